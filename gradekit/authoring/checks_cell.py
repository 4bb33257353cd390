# Checking helpers used by the visible and the hidden tests of every lab.
# Run this cell; you do not need to read it. The autograder uses its own copy of this
# cell, so editing it changes nothing in your grade.
# Each check raises CheckFailed with a message that names the function, what was
# expected (shape, value, where) and a hint; a cell whose checks all pass says so.
# A failed check stops its cell, not the notebook: "Run all" goes on to the next cells.
import math
import sys

import torch


class CheckFailed(AssertionError):
    """A check that failed, with a message written for the student."""

    def _render_traceback_(self):
        # IPython (7.34 on Colab as well as current versions) shows these lines instead of a traceback through
        # the checks' own code: the message is the whole story.
        return [f"CheckFailed: {self}"]


def fail(name, problem, hint=""):
    message = f"{name}: {problem}"
    if hint:
        message += f"\n  Hint: {hint}"
    raise CheckFailed(message) from None


def passed(name):
    """Say that the visible checks of `name` pass (the hidden tests run when the notebook is graded)."""
    print(f"{name}: the visible checks pass. Hidden tests check more cases after you hand in.")


def _stub(value):
    """True for a function, or a class with a method, that still raises NotImplementedError."""
    functions = [value]
    if isinstance(value, type):
        functions = [v for k, v in vars(value).items() if callable(v) and not k.startswith("__")
                     or k == "__init__"]
    for function in functions:
        code = getattr(function, "__code__", None)
        if code is not None and "NotImplementedError" in code.co_names:
            return True
    return False


def finish_first(*exercises, **sets):
    """Stop a cell that uses unfinished exercises, naming them (instead of a NameError further down).

    finish_first("sigmoid", mean_std=("mean", "std")): the function `sigmoid` must be written and
    the exercise `mean_std` must have set `mean` and `std` (its cell run)."""
    __tracebackhide__ = True
    namespace = sys._getframe(1).f_globals
    missing = []
    for exercise, names in [(name, (name,)) for name in exercises] + list(sets.items()):
        names = (names,) if isinstance(names, str) else names
        try:
            unfinished = any(name not in namespace or _stub(namespace[name]) for name in names)
        except Exception:  # an object that cannot be inspected is taken as written
            unfinished = False
        if unfinished:
            missing.append(exercise)
    if missing:
        listed = ", ".join(f"`{name}`" for name in missing)
        fail("finish " + ("exercise " if len(missing) == 1 else "exercises ") + listed + " first",
             "this cell uses " + ("it" if len(missing) == 1 else "them") + ".",
             "write the code of each exercise named here, run its cell, then run this cell again.")


def make_generator(seed):
    """A private random generator, so that checks are reproducible and leave the global seed alone."""
    return torch.Generator().manual_seed(seed)


def _raiser(error):
    """Name of the function whose `raise NotImplementedError()` line raised `error` (or "")."""
    if isinstance(getattr(error, "raised_in", None), str):  # raised in the student's kernel (autograder)
        return error.raised_in
    traceback = error.__traceback__
    while traceback is not None and traceback.tb_next is not None:
        traceback = traceback.tb_next
    return traceback.tb_frame.f_code.co_name if traceback is not None else ""


def _clone(value):
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, (list, tuple)):
        return type(value)(_clone(v) for v in value)
    return value


def call(name, function, *args, **kwargs):
    """Call a student's function; report exceptions and in-place changes to its tensor arguments."""
    __tracebackhide__ = True
    before = [_clone(a) for a in args]
    problem = None
    try:
        result = function(*args, **kwargs)
    except CheckFailed as error:
        problem = error
    except NotImplementedError as error:
        problem = ("stub", _raiser(error))
    except Exception as error:  # any error in student code becomes a readable failure
        problem = ("error", f"{type(error).__name__}: {error}")
    # The failure is raised here, outside the except blocks: one message, no chained traceback.
    if isinstance(problem, CheckFailed):
        raise CheckFailed(str(problem)) from None
    if problem is not None and problem[0] == "stub":
        inner = problem[1]
        if inner and inner != name.split(".")[-1] and inner not in ("__init__", "<module>"):
            fail(name, f"uses `{inner}`, which is not written yet (it still raises NotImplementedError).",
                 f"finish `{inner}` first and run its cell.")
        fail(name, "is not written yet (it still raises NotImplementedError).",
             "replace `raise NotImplementedError()` in its cell with your code, then run that cell.")
    if problem is not None:
        fail(name, f"raised {problem[1]}", "run the cell that defines it on a small example and read the error.")
    for position, (old, new) in enumerate(zip(before, args, strict=True)):
        if isinstance(old, torch.Tensor) and isinstance(new, torch.Tensor):
            if old.shape != new.shape or not torch.equal(old, new.detach()):
                fail(name, f"changed its argument number {position + 1} in place.",
                     "compute a new tensor (w = w - ...) instead of modifying the input "
                     "(w -= ..., w.sub_(...), x[...] = ...).")
    return result


def _shape(value):
    return tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__


def check_tensor(name, got, expected, rtol=1e-5, atol=1e-6, hint=""):
    """`got` must be a tensor with exactly the shape of `expected` and close values."""
    __tracebackhide__ = True
    if not isinstance(got, torch.Tensor):
        fail(name, f"returned a {type(got).__name__}; expected a torch.Tensor of shape "
                   f"{tuple(expected.shape)}.", hint or "use torch operations, not Python numbers or numpy.")
    if got.shape != expected.shape:
        fail(name, f"returned shape {tuple(got.shape)}; expected {tuple(expected.shape)}.",
             hint or "check which axis you reduce over, keepdim, and (N,) versus (N, 1) broadcasting.")
    got64 = got.detach().to(torch.float64)
    want64 = expected.detach().to(torch.float64)
    bad = ~torch.isclose(got64, want64, rtol=rtol, atol=atol, equal_nan=False)
    if bad.any():
        where = tuple(int(i) for i in bad.nonzero()[0])
        error = (got64 - want64).abs().nan_to_num(nan=math.inf).max().item()
        fail(name, f"wrong value at index {where}: got {got64[where].item():.6g}, expected "
                   f"{want64[where].item():.6g} ({int(bad.sum())} of {bad.numel()} values wrong, "
                   f"largest error {error:.3g}; tolerance rtol={rtol:g}, atol={atol:g}).", hint)


def check_scalar(name, got, expected, rtol=1e-5, atol=1e-6, hint=""):
    """`got` must be a tensor holding one number (any shape with one element) close to `expected`."""
    __tracebackhide__ = True
    if not isinstance(got, torch.Tensor):
        fail(name, f"returned a {type(got).__name__}; expected a tensor holding one number.",
             hint or "return a torch.Tensor (for example torch.mean(...)), not a Python number.")
    if got.numel() != 1:
        fail(name, f"returned shape {tuple(got.shape)} ({got.numel()} values); expected a single number.",
             hint or "reduce over all samples (mean or sum) so that one number is left.")
    value = float(got.detach().to(torch.float64).reshape(()))
    if not math.isclose(value, float(expected), rel_tol=rtol, abs_tol=atol):
        fail(name, f"returned {value:.6g}; expected {float(expected):.6g} "
                   f"(tolerance rtol={rtol:g}, atol={atol:g}).", hint)


def gradients_through(name, model, x, grad_output):
    """Autograd's gradients of sum(model(x) * grad_output) for every parameter of `model`, by name.

    (The autograder runs this step next to your model, so it works on the model you wrote.)"""
    try:
        model.zero_grad()
        model(x).backward(grad_output)
    except Exception as error:
        fail(name, f"autograd could not differentiate its output ({type(error).__name__}: {error}).",
             "build forward from differentiable torch operations on the parameters "
             "(no .detach(), .item(), .numpy() or torch.no_grad()).")
    return {parameter_name: p.grad for parameter_name, p in model.named_parameters()}


def gradient_check(name, your_gradients, loss, parameters, labels=None, tolerance=1e-6):
    """Check gradients you derived against the loss they come from, the way the tests do.

    your_gradients(*parameters) returns your gradient of `loss` for each parameter (a tensor or a tuple of them);
    loss(*parameters) returns the loss as a tensor holding one number. Both run in float64 at `parameters`.
    Each of your gradients must have its parameter's shape and match two references: central finite
    differences (the definition of a derivative: (loss(p + h) - loss(p - h)) / 2h, one entry at a time) and
    torch.func.grad (autograd, which applies the chain rule for you). Prints the relative errors
    |yours - reference| / (|yours| + |reference|); fails when one is above `tolerance`."""
    __tracebackhide__ = True
    parameters = tuple(p.detach().to(torch.float64).contiguous() for p in parameters)
    labels = labels or [f"gradient {i + 1}" for i in range(len(parameters))]
    got = your_gradients(*parameters)
    got = tuple(got) if isinstance(got, (tuple, list)) else (got,)
    if len(got) != len(parameters):
        fail(name, f"returned {len(got)} gradient(s); expected {len(parameters)}, one per parameter.")
    autograd = torch.func.grad(loss, argnums=tuple(range(len(parameters))))(*parameters)
    for index, (label, parameter, mine, reference) in enumerate(zip(labels, parameters, got, autograd, strict=True)):
        if not isinstance(mine, torch.Tensor) or mine.shape != parameter.shape:
            fail(f"{name} ({label})", f"returned {_shape(mine)}; expected shape {tuple(parameter.shape)}, the shape "
                                      "of the parameter it is the gradient of.",
                 "a gradient has one entry per entry of its parameter, in the same layout (a column stays a column).")
        finite = torch.zeros(parameter.shape, dtype=torch.float64)
        step = 1e-6
        for position in range(parameter.numel()):
            shifted = [p.clone() for p in parameters]
            shifted[index].view(-1)[position] += step
            above = float(loss(*shifted))
            shifted[index].view(-1)[position] -= 2 * step
            finite.view(-1)[position] = (above - float(loss(*shifted))) / (2 * step)
        mine = mine.detach().to(torch.float64)
        errors = [float((mine - ref).norm() / max(float(mine.norm() + ref.norm()), 1e-12))
                  for ref in (finite, reference.detach())]
        print(f"{name} ({label}): relative error {errors[0]:.1e} against finite differences, "
              f"{errors[1]:.1e} against autograd")
        if max(errors) > tolerance:
            fail(f"{name} ({label})", f"differs from the derivative of the loss: relative error {max(errors):.1e} "
                                      f"(tolerance {tolerance:g}).",
                 "go back to your derivation: which factor, sign or average is missing? Differentiate one "
                 "sample's loss first, then average over the samples.")


# ---------------------------------------------------------------- "by hand"
# An exercise written "by hand" must not call the library function that does the job (the tests compare your
# answer with that function). `written_by_hand` reads your answer's code: here from the cells you ran, in the
# autograder from the notebook you handed in (where it also reads the helpers your answer calls).
CONVENTIONAL_NAMES = {"torch": "torch", "F": "torch.nn.functional", "nn": "torch.nn", "np": "numpy",
                      "optim": "torch.optim", "sklearn": "sklearn"}
AUTOGRAD = ("torch.autograd", "torch.func", "functorch", ".backward", "torch.optim")
_parsed_cells = {}


def answer_code():
    """(the sources of your cells, the exercises checked by hand): here the cells you ran, in the autograder the
    cells you handed in. A helper your answer calls is read with it; another exercise is read on its own."""
    history = globals().get("In")  # IPython keeps every cell you ran, in order
    if not isinstance(history, list):
        return None
    sources = [source for source in history if isinstance(source, str)]
    return sources, exercises_by_hand(sources)


def exercises_by_hand(sources):
    """The names that cells check with written_by_hand("name" or "Class.method", ...)."""
    import ast

    names = set()
    for tree in filter(None, map(_parse, sources)):
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "written_by_hand" and node.args \
                    and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                names.add(node.args[0].value.partition(".")[0])
    return sorted(names)


def _parse(source):
    import ast

    if source not in _parsed_cells:
        try:
            _parsed_cells[source] = ast.parse(source)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            _parsed_cells[source] = None
    return _parsed_cells[source]


def _statements(body):
    """Top-level statements, looking inside if/try/with/for blocks but not into functions or classes."""
    import ast

    for node in body:
        yield node
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            for field in ("body", "orelse", "finalbody", "handlers"):
                yield from _statements([n for n in getattr(node, field, []) if isinstance(n, ast.AST)])


def _bound_names(node):
    import ast

    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [node.name]
    targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
    return [n.id for t in targets if isinstance(t, ast.AST) for n in ast.walk(t) if isinstance(n, ast.Name)]


def _library_calls(name, sources, avoid, exercises):
    """The entries of `avoid` that the answer `name` ("f", "Class" or "Class.method") uses, or None when no
    cell defines it. An entry is a dotted name ("torch.sigmoid": also through aliases and `from` imports;
    "torch.nn": anything inside it) or ".method" (an attribute of any object but self). The functions and
    names of the cells that the definition uses are read too, except `exercises` (judged on their own)."""
    import ast

    aliases, definitions = dict(CONVENTIONAL_NAMES), {}
    for tree in filter(None, map(_parse, sources)):
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    aliases[alias.asname or alias.name.split(".")[0]] = alias.name if alias.asname \
                        else alias.name.split(".")[0]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for alias in node.names:
                    aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        for node in _statements(tree.body):
            for bound in _bound_names(node):
                definitions[bound] = [node]  # the last cell that binds a name is the one that counts
    owner, _, method = name.partition(".")
    if owner not in definitions:
        return None
    todo, seen, used = list(definitions[owner]), {owner}, []
    if method:
        todo = [n for node in todo if isinstance(node, ast.ClassDef) for n in node.body
                if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == method][-1:]

    def dotted(node):
        parts = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if isinstance(node, ast.Name) and node.id in aliases:
            return ".".join([aliases[node.id]] + parts[::-1])
        return None

    def uses(path=None, attribute=None):
        for entry in avoid:
            if entry.startswith("."):
                hit = attribute == entry[1:] or (path or "").rpartition(".")[2] == entry[1:]
            else:
                hit = path is not None and (path == entry or path.startswith(entry + "."))
            if hit:
                if entry not in used:
                    used.append(entry)
                return  # one entry per use: torch.sigmoid is not also reported as .sigmoid

    while todo:
        target = todo.pop()
        # Names the definition binds itself (parameters, variables) are not the cells' names of the same spelling.
        local = {n.id for n in ast.walk(target) if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load)}
        local |= {n.arg for n in ast.walk(target) if isinstance(n, ast.arg)}
        for node in ast.walk(target):
            if isinstance(node, ast.Attribute):
                on_self = isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")
                uses(dotted(node) if not _rooted_in(node, local) else None, None if on_self else node.attr)
            elif isinstance(node, ast.Name) and node.id not in local:
                uses(aliases.get(node.id))
                if node.id in definitions and node.id not in seen | set(exercises):
                    seen.add(node.id)
                    todo.extend(definitions[node.id])
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                for alias in node.names:
                    module = getattr(node, "module", None)
                    uses(f"{module}.{alias.name}" if module else alias.name)
            elif isinstance(node, ast.Call) and node.args and isinstance(node.args[-1], ast.Constant):
                function = getattr(node.func, "attr", getattr(node.func, "id", ""))
                constant = str(node.args[-1].value)
                if function == "getattr" and len(node.args) == 2:  # getattr(torch, "sigmoid")
                    base = dotted(node.args[0])
                    uses(f"{base}.{constant}" if base else None, constant)
                elif function in ("__import__", "import_module"):
                    uses(constant)
    return used


def _rooted_in(node, names):
    """Whether an attribute chain starts at one of `names` (x.sigmoid with x a local: no module)."""
    import ast

    while isinstance(node, ast.Attribute):
        node = node.value
    return isinstance(node, ast.Name) and node.id in names


def _shown(entry):
    return f"`{entry}()`" if entry.startswith(".") else f"`{entry}`"


def written_by_hand(name, avoid, hint=""):
    """The answer to `name` must not use the library calls in `avoid` (see `_library_calls`)."""
    __tracebackhide__ = True
    code = answer_code()
    if code is None:  # not run by IPython: nothing to read
        return
    sources, exercises = code
    used = _library_calls(name, sources, avoid, exercises)
    if used is None:
        fail(name, "no cell of your notebook defines it with `def` or `class`, so the autograder cannot read it.",
             "keep its definition in its answer cell, as given.")
    if used:
        listed = ", ".join(map(_shown, used))
        fail(name, f"uses {listed}: this exercise asks you to write it by hand, with tensor operations.",
             hint or "the tests compare your answer with the library's function: write the computation "
                     "yourself (the library may check your answer outside the function).")


# Run all goes on past a failed check. In your notebook (here or on Colab) a cell that calls the checks
# stops at its first failed check, shows it, and the next cells still run. While the notebook is graded
# (NBGRADER_EXECUTION is set) a failed check is an error, as nbgrader expects.
CHECK_NAMES = {"call", "check_tensor", "check_scalar", "fail", "finish_first", "gradient_check", "gradients_through",
               "passed", "written_by_hand"}


def _show_check_failure(error):
    # One write: the kernel may send what was written so far between two writes (print writes its "\n" apart).
    sys.stderr.write(f"CHECK FAILED: {error}\n(This cell stopped at this check; the notebook goes on. Fix it, "
                     "then run this cell again.)\n")
    sys.stderr.flush()


def _keep_going_after_failed_checks():
    import ast
    import builtins
    import os

    shell = getattr(builtins, "get_ipython", lambda: None)()  # IPython's, while it runs a cell; else none
    if shell is None or os.environ.get("NBGRADER_EXECUTION"):
        return

    class StopAtFailedCheck(ast.NodeTransformer):
        """Wraps a cell that uses the checks in try / except CheckFailed: show the failure, go on."""

        def visit_Module(self, module):
            if not any(isinstance(node, ast.Name) and node.id in CHECK_NAMES for node in ast.walk(module)):
                return module
            wrapper = ast.parse("try:\n    pass\nexcept CheckFailed as _failure:\n"
                                "    _show_check_failure(_failure)\n    del _failure").body[0]
            wrapper.body = module.body or [ast.Pass()]
            module.body = [wrapper]
            return ast.fix_missing_locations(module)

    shell.ast_transformers[:] = [t for t in shell.ast_transformers if type(t).__name__ != "StopAtFailedCheck"]
    shell.ast_transformers.append(StopAtFailedCheck())


_keep_going_after_failed_checks()
