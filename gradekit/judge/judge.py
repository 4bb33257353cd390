"""The trusted judge: a test cell's points come from here, never from the student's process.

For every test cell, at its place in the notebook, the kernel runs the cell's visible checks (what the
student sees) and then the judge runs the whole cell, visible and hidden checks, in a process of its
own (`gradekit.judge.serve`, watched by `gradekit.judge.process`), from the gradebook's copy of the
instructor's source. The judge's namespace holds what the lab's locked cells define (imports, check
helpers, data loaders: run here from the trusted source, so a student who redefines them changes nothing
the judge checks). Every other name the checks use is the
student's: it is looked up in the kernel over the channel (`gradekit/untrusted/bridge.py`) and
arrives as a plain value (tensors as bytes, numbers, strings, containers) or as a `RemoteObject`
handle whose methods run in the kernel. Student code never runs here; the hidden tests never go there.

The verdict becomes the test cell's outputs in the notebook that nbgrader scores: nothing (full
points) or one error with the judge's message (no points). What the kernel printed stays, but its
stderr cannot zero a cell and a value it displays cannot earn partial credit.
"""

from __future__ import annotations

import builtins
import importlib
import os
import re
import sys
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from gradekit.judge.foreign_syntax import trees_this_python_cannot_parse
from gradekit.untrusted import wire

MAX_VERDICT = 1500


class ChannelClosed(BaseException):
    """The kernel stopped answering (died, timed out): not a verdict on the student's code.

    A BaseException, so that a test's `except Exception` cannot turn it into a verdict."""

    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


class JudgeOutOfMemory(BaseException):
    """The judge's process reached its memory limit: not a verdict (a BaseException, like ChannelClosed)."""


def out_of_memory(error: BaseException) -> bool:
    """Whether `error` is an allocation that failed (Python's MemoryError, or torch's allocator)."""
    return isinstance(error, MemoryError) or (isinstance(error, RuntimeError) and "allocate memory" in str(error))


class StudentCodeError(Exception):
    """An exception raised by the student's code in the kernel (its type name and message, as text)."""


_exception_classes: dict[str, type] = {"NotImplementedError": NotImplementedError}


def _student_exception(type_name: str, message: str, raised_in: Any = "") -> BaseException:
    """A local exception named like the kernel's (so that `call` says `raised ValueError: ...`).

    `raised_in` (the kernel function whose line raised it) stands in for the traceback the checks
    read to name an unfinished function: the kernel's frames do not cross the channel."""
    error = _exception_of(type_name, message)
    error.raised_in = raised_in if isinstance(raised_in, str) else ""
    return error


def _exception_of(type_name: str, message: str) -> BaseException:
    name = re.sub(r"\W", "", str(type_name))[:60] or "Error"
    if name[0].isdigit():
        name = "E" + name
    cls = _exception_classes.get(name)
    if cls is None:
        cls = _exception_classes[name] = type(name, (StudentCodeError,), {})
    return cls(str(message))


# ---------------------------------------------------------------- remote objects


class RemoteObject:
    """An object that lives in the student's kernel: attribute reads, calls and iteration go there.

    Tensors read from it are copies; assigning an attribute sends the value. `isinstance` works for
    torch classes (a stand-in class is built from the class names the kernel reports, the way
    `unittest.mock` answers `isinstance` through `__class__`)."""

    __slots__ = ("_gk_judge", "_gk_handle")

    def __init__(self, judge: Judge, handle: wire.Handle) -> None:
        object.__setattr__(self, "_gk_judge", judge)
        object.__setattr__(self, "_gk_handle", handle)

    @property
    def __class__(self):  # noqa: F811 - deliberate: isinstance() consults it
        return self._gk_judge.stand_in(self._gk_handle)

    def _gk_ref(self) -> dict:
        return {"$h": {"id": self._gk_handle.number}}

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return self._gk_judge.request({"op": "getattr", "target": self._gk_ref(), "name": name})

    def __setattr__(self, name: str, value: Any) -> None:
        self._gk_judge.request({"op": "setattr", "target": self._gk_ref(), "name": name,
                                "value": self._gk_judge.encode(value)})

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._gk_judge.call(self, args, kwargs)

    def __iter__(self):
        return iter(self._gk_judge.request({"op": "iter", "target": self._gk_ref()}))

    def __len__(self) -> int:
        value = self._gk_judge.request({"op": "len", "target": self._gk_ref()})
        if type(value) is not int or value < 0:
            raise TypeError("len() of the student's object is not a non-negative int")
        return value

    def __getitem__(self, key: Any) -> Any:
        return self._gk_judge.request({"op": "getitem", "target": self._gk_ref(), "key": self._gk_judge.encode(key)})

    def __repr__(self) -> str:
        return f"<{self._gk_handle.name} in the student's notebook>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RemoteObject) and other._gk_handle.number == self._gk_handle.number

    def __hash__(self) -> int:
        return hash(("remote", self._gk_handle.number))

    def __bool__(self) -> bool:
        return True


# What a stand-in may pretend to be: pure-Python torch classes whose methods the judge calls back into the
# kernel. Never a class with C state (Tensor, Parameter, Size, dtype, device, Generator): torch's C++ code
# would read the handle as one (a segfault). Those only ever arrive as data.
STAND_IN_BASES = (torch.nn.Module, torch.optim.Optimizer, torch.utils.data.Dataset)
DATA_ONLY = (torch.Tensor, torch.Size, torch.dtype, torch.device, torch.Generator, np.ndarray, np.generic)
DATA_ONLY_NAMES = {"torch._C.TensorBase", "torch._C._TensorBase", "torch.Tensor", "torch.nn.parameter.Parameter",
                   "torch.Size", "torch.dtype", "torch.device", "torch.Generator", "torch._C.Generator",
                   "numpy.ndarray", "numpy.generic"}


def _resolve(path: str) -> Any:
    """The judge's own object for a kernel class name, only among torch's and numpy's imported modules; no
    attribute is looked up by a name the student chose outside them."""
    module_name, _, qualname = path.rpartition(".")
    if not (module_name in ("torch", "numpy") or module_name.startswith(("torch.", "numpy."))):
        return None
    value: Any = sys.modules.get(module_name)
    for part in qualname.split("."):
        if value is None or part.startswith("__"):
            return None
        value = getattr(value, part, None)
    return value


def poses_as_data(path: str) -> bool:
    """Whether a kernel object that claims class `path` claims to be a tensor, size, dtype, device, generator
    or array: a real one is sent as data, so a handle claiming it is an impostor."""
    if path in DATA_ONLY_NAMES:
        return True
    value = _resolve(path)
    return isinstance(value, type) and issubclass(value, DATA_ONLY)


def _local_class(path: str) -> type | None:
    """The judge's own pure-Python torch class for a kernel class name (`STAND_IN_BASES`), else None."""
    value = _resolve(path)
    if not isinstance(value, type) or not issubclass(value, STAND_IN_BASES) or issubclass(value, DATA_ONLY):
        return None
    return value


# ---------------------------------------------------------------- the namespace


def _quiet(*args: Any, **kwargs: Any) -> None:
    """print/display in the judge: the lab's cells print for the student, not for the grader."""


class JudgeNamespace(dict):
    """Globals of the judged cells: trusted names first, then the student's, fetched on first use.

    The student's names are fetched again for every cell (the notebook may redefine them)."""

    def __init__(self, judge: Judge) -> None:
        super().__init__(__name__="__main__", __builtins__=JUDGE_BUILTINS, print=_quiet, display=_quiet)
        self.judge = judge
        self.remote: set[str] = set()

    def _fetch(self, name: str) -> tuple[bool, Any]:
        if name.startswith("__") or hasattr(builtins, name):
            return False, None
        reply = self.judge.request_raw({"op": "lookup", "name": name})
        if reply.get("missing"):
            return False, None
        value = self.judge.decode_reply(reply)
        dict.__setitem__(self, name, value)
        self.remote.add(name)
        return True, value

    def __missing__(self, name: str) -> Any:
        found, value = self._fetch(name)
        if not found:
            raise KeyError(name)
        return value

    def __contains__(self, name: object) -> bool:
        return dict.__contains__(self, name) or (isinstance(name, str) and self._fetch(name)[0])

    def get(self, name: Any, default: Any = None) -> Any:
        return self[name] if name in self else default

    def __setitem__(self, name: str, value: Any) -> None:
        self.remote.discard(name)
        dict.__setitem__(self, name, value)

    def __delitem__(self, name: str) -> None:
        self.remote.discard(name)
        dict.__delitem__(self, name)

    def forget_student_names(self) -> None:
        for name in self.remote:
            dict.pop(self, name, None)
        self.remote.clear()


# ---------------------------------------------------------------- the judge


@dataclass
class Verdict:
    passed: bool
    message: str = ""
    ename: str = "CheckFailed"  # a bare `assert` in a test shows as AssertionError: an authoring mistake


# Plotting libraries that a lab's imports cell names but that no check draws with: in the judge's
# cells, `import seaborn as sns` binds a stand-in that imports the real module at its first attribute
# access. This saves ~3 s of CPU per grading run (seaborn pulls in scipy.stats).
DEFERRED_MODULES = ("seaborn", "matplotlib.pyplot")


class _DeferredModule(types.ModuleType):
    def __getattr__(self, name: str) -> Any:
        return getattr(importlib.import_module(self.__name__), name)


def _deferring_import(name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0) -> Any:
    if level == 0 and name in DEFERRED_MODULES and name not in sys.modules:
        parts = name.split(".")
        modules = [_DeferredModule(".".join(parts[:i + 1])) for i in range(len(parts))]
        for parent, child in zip(modules, modules[1:], strict=False):
            setattr(parent, child.__name__.rsplit(".", 1)[1], child)
        return modules[-1] if fromlist else modules[0]
    return builtins.__import__(name, globals, locals, fromlist, level)


JUDGE_BUILTINS = {**vars(builtins), "__import__": _deferring_import}


class Judge:
    """Runs trusted cells against one student's kernel, reached through `send(request) -> reply`."""

    def __init__(self, send: Callable[[dict], dict], program: dict[str, str], student_code: Sequence[str] = (),
                 runtime_python: str | None = None) -> None:
        self.send = send
        self.program = program
        # The code cells the student handed in (`gradekit.course.cells.student_code`), for the "by hand" checks:
        # read as text here, never run; what this Python cannot parse is parsed by the kernel runtime's
        # interpreter, `runtime_python` (`gradekit.judge.foreign_syntax`).
        self.student_code = list(student_code)
        self.runtime_python = runtime_python
        self._by_hand: list[str] | None = None
        self.namespace = JudgeNamespace(self)
        self._stand_ins: dict[tuple[str, ...], type] = {}
        self.last_called = ""
        # Check helpers that must run where the student's objects live (autograd through their model):
        # the judge's versions replace the checks cell's after every trusted cell.
        self.judge_side_helpers = {"gradients_through": self._gradients_through, "answer_code": self._answer_code}
        # The lab's cells skip pure plots while grading (`SHOW_PLOTS`), here as in the kernel.
        os.environ.setdefault("NBGRADER_EXECUTION", "autograde")

    # ------------------------------------------------------------ channel

    def request_raw(self, message: dict) -> dict:
        reply = self.send(message)
        if not isinstance(reply, dict):
            raise ChannelClosed("crashed", "the kernel sent something that is not an answer")
        return reply

    def decode_reply(self, reply: dict) -> Any:
        if "error" in reply:
            error = reply["error"] if isinstance(reply["error"], dict) else {}
            raise _student_exception(error.get("type", "Error"), error.get("message", ""), error.get("raised_in"))
        try:
            return wire.decode(reply.get("ok"), self._make_handle)
        except (wire.WireError, ValueError, TypeError, OverflowError) as error:
            raise StudentCodeError(f"returned something that cannot be checked ({error})") from None
        except (MemoryError, RuntimeError) as error:
            if out_of_memory(error):
                raise JudgeOutOfMemory(str(error)[:200]) from None
            raise

    def request(self, message: dict) -> Any:
        return self.decode_reply(self.request_raw(message))

    def _make_handle(self, tag: str, spec: Any) -> RemoteObject:
        if tag != "$h":
            raise wire.WireError("unexpected value")
        handle = wire.handle_spec(spec)
        posing = next((path for path in handle.classes if poses_as_data(path)), None)
        if posing is not None:
            raise wire.WireError(f"an object that claims to be a {posing.rpartition('.')[2]} but is not a real one")
        return RemoteObject(self, handle)

    def _reference(self, value: Any) -> dict:
        if isinstance(value, RemoteObject):
            return value._gk_ref()
        if isinstance(value, torch.nn.Module):
            return wire.encode_module(value)
        raise wire.WireError(f"a {type(value).__name__} cannot be sent to the student's code")

    def encode(self, value: Any) -> Any:
        return wire.encode(value, self._reference)

    def call(self, function: RemoteObject, args: tuple, kwargs: dict) -> Any:
        """Call the student's function in the kernel; mirror its in-place changes to tensors and modules."""
        self.last_called = function._gk_handle.name
        arguments = [(str(i), v) for i, v in enumerate(args)] + [(f"k:{k}", v) for k, v in kwargs.items()]
        modules = [key for key, value in arguments
                   if isinstance(value, torch.nn.Module) and not isinstance(value, RemoteObject)]
        reply = self.request_raw({"op": "call", "target": function._gk_ref(), "args": self.encode(list(args)),
                                  "kwargs": self.encode(dict(kwargs)), "modules": modules})
        result = self.decode_reply(reply)
        after = reply.get("after") if isinstance(reply.get("after"), dict) else {}
        for key, value in arguments:
            if key in after:
                self._apply_after(value, after[key])
        return result

    def _gradients_through(self, name: str, model: Any, x: Any, grad_output: Any) -> dict:
        fail = self.namespace["fail"]
        if not isinstance(model, RemoteObject):  # the judge's own model: autograd right here
            model.zero_grad()
            model(x).backward(grad_output)
            return {parameter_name: p.grad for parameter_name, p in model.named_parameters()}
        try:
            gradients = self.request({"op": "gradients", "target": model._gk_ref(), "args": self.encode([x]),
                                      "grad_output": self.encode(grad_output)})
        except StudentCodeError as error:
            fail(name, f"autograd could not differentiate its output ({type(error).__name__}: {error}).",
                 "build forward from differentiable torch operations on the parameters "
                 "(no .detach(), .item(), .numpy() or torch.no_grad()).")
        if not isinstance(gradients, dict):
            fail(name, "autograd gave no gradients for its parameters.")
        return gradients

    def _answer_code(self) -> tuple[list[str], list[str]]:
        """The checks cell's `answer_code` in the judge: the handed-in cells (never the kernel's history), and the
        exercises that the lab's trusted cells check "by hand"."""
        if self._by_hand is None:  # the trusted checks cell's function, never a name looked up in the kernel
            exercises_by_hand = dict.get(self.namespace, "exercises_by_hand")
            self._by_hand = list(exercises_by_hand(list(self.program.values()))) if exercises_by_hand else []
            parsed = dict.get(self.namespace, "_parsed_cells")  # the checks cell's cache of parsed cells
            if isinstance(parsed, dict):
                foreign = trees_this_python_cannot_parse(self.runtime_python, self.student_code)
                parsed.update({source: tree for source, tree in foreign.items() if tree is not None})
        return self.student_code, self._by_hand

    @staticmethod
    def _apply_after(local: Any, state: Any) -> None:
        try:
            with torch.no_grad():
                if isinstance(local, torch.Tensor) and not isinstance(local, RemoteObject):
                    new = wire.decode_tensor(state.get("$t") if isinstance(state, dict) else None)
                    local.data = new.detach().to(local.dtype) if new.shape == local.shape else new.detach()
                elif isinstance(local, torch.nn.Module) and isinstance(state, dict):
                    parameters = dict(local.named_parameters())
                    for name, value in (state.get("parameters") or {}).items():
                        if name in parameters:
                            new = wire.decode_tensor(value.get("$t") if isinstance(value, dict) else None)
                            if new.shape == parameters[name].shape:
                                parameters[name].data = new.detach().to(parameters[name].dtype)
                                parameters[name].grad = None if new.grad is None else new.grad.to(
                                    parameters[name].dtype)
                    buffers = dict(local.named_buffers())
                    for name, value in (state.get("buffers") or {}).items():
                        if name in buffers:
                            new = wire.decode_tensor(value.get("$t") if isinstance(value, dict) else None)
                            if new.shape == buffers[name].shape:
                                buffers[name].data = new.to(buffers[name].dtype)
        except (wire.WireError, ValueError, TypeError, AttributeError):
            pass  # a malformed update leaves the judge's copy as it was: the checks then fail on their own

    def stand_in(self, handle: wire.Handle) -> type:
        """A local class that answers isinstance() for the kernel object's torch classes."""
        key = tuple(handle.classes)
        if key not in self._stand_ins:
            base = next((cls for cls in map(_local_class, handle.classes) if cls is not None), None)
            try:
                stand_in = type(handle.name or "StudentObject", (base,), {}) if base not in (None, object) \
                    else RemoteObject
            except TypeError:  # a final class (function, method): nothing to pretend
                stand_in = RemoteObject
            self._stand_ins[key] = stand_in
        return self._stand_ins[key]

    # ------------------------------------------------------------ cells

    def run(self, grade_id: str, is_test: bool) -> Verdict:
        """Run the trusted source of cell `grade_id`; raises ChannelClosed when the kernel is gone."""
        self.namespace.forget_student_names()
        try:
            try:
                exec(compile(self.program[grade_id], f"<{grade_id}>", "exec"), self.namespace)
            finally:
                for helper, replacement in self.judge_side_helpers.items():
                    if dict.__contains__(self.namespace, helper):
                        dict.__setitem__(self.namespace, helper, replacement)
        except (ChannelClosed, JudgeOutOfMemory):
            raise
        except NotImplementedError:
            name = self.last_called or grade_id
            return Verdict(False, f"{name}: is not written yet (it still raises NotImplementedError).\n  Hint: "
                                  "replace `raise NotImplementedError()` in its cell with your code, then run "
                                  "that cell.")
        except AssertionError as error:  # CheckFailed and its message, written for the student
            return Verdict(False, _clip(str(error)), type(error).__name__)
        except NameError as error:
            name = getattr(error, "name", None) or str(error)
            return Verdict(False, _clip(f"{grade_id}: `{name}` is not defined in your notebook. Hint: run (or "
                                        "restore) the cell that defines it, and keep its name."))
        except RecursionError:
            return Verdict(False, f"{grade_id}: your code returned something nested too deeply to check.")
        except (MemoryError, RuntimeError) as error:
            if out_of_memory(error):
                raise JudgeOutOfMemory(str(error)[:200]) from None
            return self._checks_failed(grade_id, is_test, error)
        except Exception as error:  # the checks could not use what the student's code gave back
            return self._checks_failed(grade_id, is_test, error)
        return Verdict(True)

    @staticmethod
    def _checks_failed(grade_id: str, is_test: bool, error: Exception) -> Verdict:
        if is_test:
            return Verdict(False, _clip(f"{grade_id}: the checks could not use what your code returned "
                                        f"({type(error).__name__}: {error})."))
        return Verdict(False, "")


def _clip(text: str) -> str:
    return text if len(text) <= MAX_VERDICT else text[:MAX_VERDICT] + " ..."


# ---------------------------------------------------------------- notebooks


def import_for_judge(program: dict[str, str]) -> None:
    """Import what the lab's trusted cells import (their `import` statements only, at any depth: a hidden test
    imports inside its function; plotting modules deferred, as the judge would), so that no student's judge
    pays for it: each is forked from the process that did."""
    import ast

    for source in program.values():
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom) and not getattr(node, "level", 0):
                try:
                    exec(compile(ast.Module(body=[node], type_ignores=[]), "<imports>", "exec"),
                         {"__builtins__": JUDGE_BUILTINS})
                except Exception:  # noqa: BLE001 - the judge meets the same error in its cell, and reports it
                    pass


def trusted_program(db_url: str, lab: str, notebook: str) -> dict[str, str]:
    """grade_id -> source of every code cell the judge runs: tests and locked cells, from the gradebook.

    The gradebook keeps the instructor's source as `nbgrader generate_assignment` saved it, hidden
    tests included; nothing here comes from the submission."""
    from nbgrader.api import Gradebook

    with Gradebook(db_url) as gb:
        record = gb.find_notebook(notebook, lab)
        graded = {c.name for c in record.grade_cells}
        answers = {c.name for c in record.solution_cells}  # the student's code: never the instructor's
        return {c.name: c.source for c in record.source_cells
                if c.cell_type == "code" and (c.locked or c.name in graded) and c.name not in answers}
