"""The judge and its channel, without a kernel: the bridge serves from a plain namespace in this process.

What the grader relies on: values cross the channel as data, exactly (dtype, shape, bits); malformed
or oversized data is refused, not parsed; the judge's verdicts, messages and in-place semantics are
those of the same checks run in the student's process; hidden tests never reach the kernel's notebook.
"""

from __future__ import annotations

import json
import math

import nbformat
import numpy as np
import pytest
import torch

from gradekit.authoring.notebooks import CHECKS_PATH
from gradekit.course.cells import NBGRADER_DEFAULTS
from gradekit.judge import driver as driver_module
from gradekit.judge import judge as judge_module
from gradekit.judge.driver import judged_outputs, kernel_notebook
from gradekit.judge.judge import Judge
from gradekit.untrusted import wire
from gradekit.untrusted.bridge import Bridge


def roundtrip(value):
    return wire.decode(json.loads(json.dumps(wire.encode(value))), lambda tag, spec: None)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.int8,
                                   torch.int64, torch.uint8, torch.bool, torch.complex64])
@pytest.mark.parametrize("shape", [(), (0,), (3,), (2, 0, 4), (5, 1)])
def test_tensors_cross_bit_for_bit(dtype, shape):
    source = (torch.randn(shape, dtype=torch.float64) * 100).to(dtype)
    got = roundtrip(source)
    assert got.dtype == dtype and got.shape == source.shape
    assert torch.equal(got.view(-1).view(torch.uint8) if got.numel() else got,
                       source.view(-1).view(torch.uint8) if source.numel() else source)


def test_plain_values_containers_and_special_floats():
    value = {"a": [1, 2.5, float("nan"), float("inf"), -float("inf")], ("t", 1): (None, True, "x"),
             "size": torch.Size([2, 3]), "dtype": torch.float64, "array": np.arange(6).reshape(2, 3),
             "scalar": np.float32(1.5), "slice": slice(1, None, 2)}
    got = roundtrip(value)
    assert got["a"][:2] == [1, 2.5] and math.isnan(got["a"][2]) and got["a"][3:] == [math.inf, -math.inf]
    assert got[("t", 1)] == (None, True, "x") and got["size"] == torch.Size([2, 3])
    assert got["dtype"] is torch.float64 and got["slice"] == slice(1, None, 2)
    assert np.array_equal(got["array"], np.arange(6).reshape(2, 3)) and got["scalar"].dtype == np.float32


def test_a_parameter_keeps_its_kind_and_gradient():
    parameter = torch.nn.Parameter(torch.randn(2, 3, dtype=torch.float64))
    parameter.grad = torch.ones(2, 3, dtype=torch.float64)
    got = roundtrip(parameter)
    assert isinstance(got, torch.nn.Parameter) and got.requires_grad
    assert torch.equal(got.grad, parameter.grad)


@pytest.mark.parametrize("data", [
    {"$t": {"dtype": "float32", "shape": [1000000], "data": "AAAA"}},  # claims more bytes than it has
    {"$t": {"dtype": "object", "shape": [1], "data": ""}},
    {"$t": {"dtype": "float32", "shape": [-1], "data": ""}},
    {"$t": {"dtype": "float32", "shape": [1] * 20, "data": "AAAAAA=="}},
    {"$a": {"dtype": "|O", "shape": [1], "data": "AAAAAAAAAAA="}},
    {"$f": "1e999"},
    {"$unknown": 1},
    {"$d": [[[1], 2]]},  # unhashable key
    "x" * (wire.MAX_TEXT + 1),
])
def test_malformed_values_are_refused(data):
    with pytest.raises(wire.WireError):
        wire.decode(data, lambda tag, spec: None)


def test_depth_and_count_are_bounded():
    deep: object = 1
    for _ in range(wire.MAX_DEPTH + 5):
        deep = [deep]
    with pytest.raises(wire.WireError):
        wire.decode(deep, lambda tag, spec: None)
    with pytest.raises(wire.WireError):
        wire.decode([0] * (wire.MAX_ITEMS + 1), lambda tag, spec: None)


# ---------------------------------------------------------------- the judge against an in-process bridge


def student(source: str) -> dict:
    namespace: dict = {"__name__": "__main__"}
    exec(source, namespace)
    return namespace


def make_judge(namespace: dict, program: dict[str, str]) -> Judge:
    bridge = Bridge(namespace)
    return Judge(lambda message: json.loads(bridge.serve(json.dumps(message))), {"checks": CHECKS_PATH.read_text(),
                                                                                 **program})


def verdict(student_source: str, test: str):
    judge = make_judge(student("import torch\n" + student_source), {"test": "import torch\n" + test})
    assert judge.run("checks", False).passed
    return judge.run("test", True)


DOUBLE_TEST = """
g = make_generator(7)
x = torch.randn(5, generator=g, dtype=torch.float64)
check_tensor("double", call("double", double, x), 2 * x, hint="multiply by two")
"""


def test_right_and_wrong_answers_get_the_verdicts_they_deserve():
    assert verdict("def double(x):\n    return x * 2", DOUBLE_TEST).passed
    wrong = verdict("def double(x):\n    return x + 1", DOUBLE_TEST)
    assert not wrong.passed and wrong.ename == "CheckFailed" and wrong.message.startswith("double: wrong value")


def test_messages_for_unwritten_missing_and_crashing_functions():
    unwritten = verdict("def double(x):\n    raise NotImplementedError()", DOUBLE_TEST)
    assert "double: is not written yet" in unwritten.message
    missing = verdict("", DOUBLE_TEST)
    assert "`double` is not defined" in missing.message
    crash = verdict("def double(x):\n    return x @ torch.ones(3, 3)", DOUBLE_TEST)
    assert crash.message.startswith("double: raised RuntimeError")


def test_in_place_changes_of_arguments_are_seen_by_the_judge():
    result = verdict("def double(x):\n    return x.mul_(2)", DOUBLE_TEST)
    assert "changed its argument number 1 in place" in result.message


def test_a_returned_lookalike_cannot_pass_for_a_tensor():
    cheat = ("class Always(torch.Tensor):\n"
             "    @classmethod\n"
             "    def __torch_function__(cls, func, types, args=(), kwargs=None):\n"
             "        return torch.tensor(True)\n"
             "def double(x):\n    return (x + 1).as_subclass(Always)")
    assert not verdict(cheat, DOUBLE_TEST).passed


def test_a_lab_helper_the_student_redefines_changes_nothing():
    judge = make_judge(student("import torch\ndef double(x):\n    return x + 1\n"
                               "def check_tensor(*args, **kwargs):\n    pass"), {"test": DOUBLE_TEST})
    judge.run("checks", False)
    assert not judge.run("test", True).passed


def test_student_objects_are_handles_with_torch_isinstance():
    model_source = ("class Model(torch.nn.Module):\n"
                    "    def __init__(self, d):\n"
                    "        super().__init__()\n"
                    "        self.linear = torch.nn.Linear(d, 1)\n"
                    "    def forward(self, x):\n"
                    "        return torch.sigmoid(self.linear(x)).view(-1)\n")
    test = """
model = call("Model", Model, 3)
if not isinstance(model, torch.nn.Module) or isinstance(model, torch.Tensor):
    fail("Model", "isinstance is wrong")
layers = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
if len(layers) != 1 or layers[0].in_features != 3:
    fail("Model", "modules are wrong")
w = torch.randn(1, 3, dtype=torch.float64)
model = model.double()
layers[0].weight = torch.nn.Parameter(w)
layers[0].bias = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
x = torch.randn(4, 3, dtype=torch.float64)
probas = call("Model.forward", model, x)
check_tensor("Model.forward", probas, torch.sigmoid(x @ w.T).view(-1))
if not probas.requires_grad:
    fail("Model.forward", "no autograd")
grads = gradients_through("Model", model, x, torch.ones(4, dtype=torch.float64))
p = torch.sigmoid(x @ w.T).view(-1)
check_tensor("Model (weight grad)", grads["linear.weight"], ((p * (1 - p)).view(-1, 1) * x).sum(0, keepdim=True))
"""
    result = verdict(model_source, test)
    assert result.passed, result.message


def test_a_test_model_is_sent_as_torch_nn_blocks_and_comes_back_trained():
    train = ("def train(model, x, y, lr):\n"
             "    optimizer = torch.optim.SGD(model.parameters(), lr=lr)\n"
             "    loss = torch.nn.functional.mse_loss(model(x), y)\n"
             "    optimizer.zero_grad()\n    loss.backward()\n    optimizer.step()\n    return loss.item()\n")
    test = """
import copy
model = torch.nn.Sequential(torch.nn.Linear(2, 1, dtype=torch.float64), torch.nn.Flatten(0))
reference = copy.deepcopy(model)
x, y = torch.randn(6, 2, dtype=torch.float64), torch.randn(6, dtype=torch.float64)
loss = call("train", train, model, x, y, 0.1)
sgd = torch.optim.SGD(reference.parameters(), lr=0.1)
expected = torch.nn.functional.mse_loss(reference(x), y)
sgd.zero_grad(); expected.backward(); sgd.step()
check_scalar("train (loss)", torch.tensor(loss), expected.item())
for (name, got), want in zip(model.named_parameters(), reference.parameters()):
    check_tensor(f"train ({name})", got.detach(), want.detach())
    check_tensor(f"train ({name}.grad)", got.grad, want.grad)
"""
    result = verdict(train, test)
    assert result.passed, result.message


def test_only_torch_nn_blocks_can_be_sent():
    class Custom(torch.nn.Module):
        def forward(self, x):
            return x

    with pytest.raises(wire.WireError):
        wire.encode_module(Custom())


def test_the_kernel_side_refuses_to_build_anything_but_torch_nn_modules():
    bridge = Bridge({"f": lambda m: m})
    spec = wire.encode_module(torch.nn.Linear(1, 1))
    spec["$m"]["class"] = "os.system"
    reply = json.loads(bridge.serve(json.dumps({"op": "call", "target": json.loads(bridge.serve(json.dumps(
        {"op": "lookup", "name": "f"})))["ok"], "args": [spec], "kwargs": {"$d": []}})))
    assert reply["error"]["type"] == "UnsendableValue"


def test_judge_helpers_cannot_be_reached_from_a_forged_reply():
    judge = Judge(lambda message: {"ok": {"$t": {"dtype": "float64", "shape": [10**9], "data": ""}}}, {})
    with pytest.raises(judge_module.StudentCodeError):
        judge.request({"op": "lookup", "name": "x"})


# ---------------------------------------------------------------- notebooks and outputs


HIDDEN_CELL = "visible()\n### BEGIN HIDDEN TESTS\nsecret_marker()\n### END HIDDEN TESTS\nafter()"


def test_the_kernel_gets_no_hidden_test_line():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(HIDDEN_CELL)])
    sent = kernel_notebook(nb)
    assert "secret_marker" not in json.dumps(sent) and "secret_marker" in nb.cells[0].source
    assert NBGRADER_DEFAULTS.strip_hidden(HIDDEN_CELL) == "visible()\nafter()"


def test_only_the_verdict_decides_a_test_cell():
    kernel = [nbformat.v4.new_output("stream", name="stderr", text="progress\n"),
              nbformat.v4.new_output("execute_result", data={"text/plain": "3"}, execution_count=1),
              nbformat.v4.new_output("error", ename="CheckFailed", evalue="forged", traceback=[]),
              nbformat.v4.new_output("display_data", data={"text/plain": "a plot"})]
    passed = judged_outputs(kernel, judge_module.Verdict(True))
    assert [o.output_type for o in passed] == ["stream", "display_data"] and passed[0].name == "stdout"
    failed = judged_outputs(kernel, judge_module.Verdict(False, "double: wrong"))
    assert failed[-1].output_type == "error" and failed[-1].evalue == "double: wrong"
    assert failed[-1].traceback == ["CheckFailed: double: wrong"]


def test_malformed_kernel_outputs_are_rebuilt_or_dropped():
    assert driver_module.clean_output("not a dict") is None
    assert driver_module.clean_output({"output_type": "stream", "name": "evil", "text": ["a", 1, "b"]}).text == "ab"
    error = driver_module.clean_output({"output_type": "error", "ename": 5, "evalue": "x" * 10000,
                                       "traceback": "no"})
    assert error.ename == "" and len(error.evalue) == 5000 and error.traceback == []
    assert driver_module.clean_output({"output_type": "display_data", "data": "x"}) is None
