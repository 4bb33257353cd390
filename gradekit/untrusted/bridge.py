"""The kernel's end of the judge's channel: call what the judge names, answer with plain data.

Runs in the student's process (an IPython kernel in the sandbox, or the corpus harness's forked
child), so nothing here is trusted by the judge: student code can replace any of it, and then
only changes the values its own functions appear to return. The judge sends requests as JSON
(`serve`) and gets JSON back; objects that are not plain data (models, functions) stay here
and are named by handle numbers.

Requests (`op`): lookup a global, getattr, setattr, call, iter, len, getitem, and gradients (autograd
through a model, which only works where the model lives).
A call answers with the result and, for every tensor argument the call changed in place and
every module the judge sent, their values after the call (so that the judge sees in-place
updates, as it would in the same process).
"""

from __future__ import annotations

import importlib
import itertools
import json
from typing import Any

import torch

try:
    from . import wire
except ImportError:  # inside the sandbox: a top-level module next to this one
    import wire  # type: ignore[no-redef]

MAX_ITERATION = 10_000
MAX_MESSAGE = 2_000


def _innermost_function(error: BaseException) -> str:
    """The name of the function whose line raised `error` (what the checks name as unfinished)."""
    traceback = error.__traceback__
    while traceback is not None and traceback.tb_next is not None:
        traceback = traceback.tb_next
    return traceback.tb_frame.f_code.co_name[:100] if traceback is not None else ""


def _short(text: Any) -> str:
    text = str(text)
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE] + "..."


class Bridge:
    def __init__(self, namespace: dict) -> None:
        self.namespace = namespace
        self.objects: dict[int, Any] = {}
        self.numbers: dict[int, int] = {}
        self.counter = itertools.count(1)

    # ------------------------------------------------------------ values

    def handle_of(self, value: Any) -> dict:
        if hasattr(type(value), "__next__") and hasattr(type(value), "__iter__"):  # generators: materialize
            return [wire.encode(v, self.handle_of) for v in itertools.islice(value, MAX_ITERATION)]
        number = self.numbers.get(id(value))
        if number is None or self.objects.get(number) is not value:
            number = next(self.counter)
            self.objects[number], self.numbers[id(value)] = value, number
        name = getattr(value, "__qualname__", None) or getattr(type(value), "__qualname__", "object")
        return {"$h": {"id": number, "classes": wire.describe_classes(value), "callable": callable(value),
                       "name": _short(name)[:200]}}

    def _from_judge(self, tag: str, spec: Any) -> Any:
        if tag == "$h":
            number = spec.get("id") if isinstance(spec, dict) else None
            if number not in self.objects:
                raise wire.WireError("unknown handle")
            return self.objects[number]
        return self._build_module(spec)

    def _build_module(self, spec: dict, depth: int = 0) -> torch.nn.Module:
        path = spec["class"]
        module_name, _, qualname = path.rpartition(".")
        if not module_name.startswith("torch.nn.") or depth > wire.MAX_DEPTH:
            raise wire.WireError("only torch.nn building blocks")
        cls = importlib.import_module(module_name)
        for part in qualname.split("."):
            cls = getattr(cls, part)
        if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
            raise wire.WireError("not a module class")
        module = cls.__new__(cls)
        torch.nn.Module.__init__(module)
        for key, value in spec["attributes"].items():
            module.__dict__[key] = wire.decode(value, self._from_judge)
        for key, value in spec["parameters"].items():
            module._parameters[key] = None if value is None else torch.nn.Parameter(
                wire.decode(value, self._from_judge).detach(), requires_grad=value["$t"].get("rg", True))
        for key, value in spec["buffers"].items():
            module._buffers[key] = None if value is None else wire.decode(value, self._from_judge)
        for key, value in spec["children"].items():
            module._modules[key] = None if value is None else self._build_module(value["$m"], depth + 1)
        module.train(bool(spec.get("training", True)))
        return module

    def _decode(self, data: Any) -> Any:
        return wire.decode(data, self._from_judge)

    def _encode(self, value: Any) -> Any:
        return wire.encode(value, self.handle_of)

    # ------------------------------------------------------------ requests

    def serve(self, request_text: str) -> str:
        try:
            request = json.loads(request_text)
            answer = getattr(self, "_op_" + request["op"])(request)
        except wire.WireError as error:
            answer = {"error": {"type": "UnsendableValue", "message": _short(error)}}
        except BaseException as error:  # the student's code raised: report it, as data
            answer = {"error": {"type": type(error).__name__[:100], "message": _short(error),
                                "raised_in": _innermost_function(error)}}
        try:
            return json.dumps(answer, allow_nan=False)
        except (TypeError, ValueError) as error:
            return json.dumps({"error": {"type": "UnsendableValue", "message": _short(error)}})

    def _target(self, request: dict) -> Any:
        return self._decode(request["target"])

    def _op_lookup(self, request: dict) -> dict:
        name = request["name"]
        if name not in self.namespace:
            return {"missing": True}
        return {"ok": self._encode(self.namespace[name])}

    def _op_getattr(self, request: dict) -> dict:
        return {"ok": self._encode(getattr(self._target(request), request["name"]))}

    def _op_setattr(self, request: dict) -> dict:
        setattr(self._target(request), request["name"], self._decode(request["value"]))
        return {"ok": None}

    def _op_iter(self, request: dict) -> dict:
        items = list(itertools.islice(iter(self._target(request)), MAX_ITERATION))
        return {"ok": [self._encode(v) for v in items]}

    def _op_len(self, request: dict) -> dict:
        return {"ok": len(self._target(request))}

    def _op_getitem(self, request: dict) -> dict:
        return {"ok": self._encode(self._target(request)[self._decode(request["key"])])}

    def _op_call(self, request: dict) -> dict:
        function = self._target(request)
        args = self._decode(request["args"])
        kwargs = self._decode(request["kwargs"])
        if not isinstance(args, list) or not isinstance(kwargs, dict):
            raise wire.WireError("bad call")
        before = {key: value.detach().clone() for key, value in self._arguments(args, kwargs)
                  if isinstance(value, torch.Tensor)}
        result = function(*args, **kwargs)
        answer = {"ok": self._encode(result), "after": {}}
        for key, value in self._arguments(args, kwargs):
            if isinstance(value, torch.Tensor):
                old = before[key]
                if old.shape != value.shape or old.dtype != value.dtype or not torch.equal(old, value.detach()):
                    answer["after"][key] = wire.encode_tensor(value)
            elif isinstance(value, torch.nn.Module) and key in request.get("modules", []):
                answer["after"][key] = {
                    "parameters": {n: wire.encode_tensor(p) for n, p in value.named_parameters()},
                    "buffers": {n: wire.encode_tensor(b) for n, b in value.named_buffers()}}
        return answer

    def _op_gradients(self, request: dict) -> dict:
        """Autograd's gradients of sum(model(*args) * grad_output) for the model's parameters, by name."""
        model = self._target(request)
        args = self._decode(request["args"])
        grad_output = self._decode(request["grad_output"])
        model.zero_grad()
        output = model(*args)
        output.backward(grad_output)
        return {"ok": self._encode({name: p.grad for name, p in model.named_parameters()})}

    @staticmethod
    def _arguments(args: list, kwargs: dict):
        yield from ((str(i), v) for i, v in enumerate(args))
        yield from ((f"k:{k}", v) for k, v in kwargs.items())


_bridge: Bridge | None = None


def serve(request_text: str) -> str:
    """Entry point the executor evaluates in the kernel (as a user expression)."""
    global _bridge
    if _bridge is None:
        from IPython import get_ipython

        _bridge = Bridge(get_ipython().user_ns)
    return _bridge.serve(request_text)


def serve_channel(requests_fd: int, replies_fd: int, kernel_app: Any) -> None:
    """A forked kernel's direct line to the judge (`zygote.py`): one JSON request per line in, one
    answer per line out, each run on the kernel's main thread between cells (as a user expression
    would be, without the round trip through the executor and IPython's execute machinery).

    Started before the kernel's loop; a daemon thread waits for requests and hands each to the loop."""
    import signal
    import threading

    def run(line: str, box: dict, done: threading.Event) -> None:
        # An interrupt from the grader (the judge's call took longer than a cell may) stops the call.
        previous = signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            box["reply"] = serve(line)
        except BaseException as error:  # noqa: BLE001 - e.g. KeyboardInterrupt between serve's own handlers
            box["reply"] = json.dumps({"error": {"type": type(error).__name__, "message": _short(error)}})
        finally:
            signal.signal(signal.SIGINT, previous)
            done.set()

    def loop() -> None:
        with open(requests_fd, encoding="utf-8") as requests, open(replies_fd, "w", encoding="utf-8") as replies:
            for line in requests:
                request_id, _, request = line.partition(" ")  # the judge's id, echoed in front of the reply
                box: dict = {}
                done = threading.Event()
                kernel_app.io_loop.add_callback(run, request, box, done)
                done.wait()
                replies.write(f"{request_id} {box.get('reply', 'null')}\n")
                replies.flush()

    threading.Thread(target=loop, name="judge-channel", daemon=True).start()
