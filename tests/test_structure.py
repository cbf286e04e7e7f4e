"""The package's shape: no import circles, small modules, other libraries' private names and MLflow run
creation each in their one place. These read the source; nothing here trains."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "sweeplab"
MAX_LINES = 300
MAX_FUNCTION_LINES = 50  # a function reads in one screen
# Split on the `ctx` branch (issue 28 point 4): remove each name here once that branch is merged.
LONG_ELSEWHERE: set[str] = set()


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imported(module: str) -> set[str]:
    """Every sweeplab module `module` imports, at its top or inside a function."""
    tree = ast.parse(MODULES[module].read_text())
    package = module if MODULES[module].name == "__init__.py" else module.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            names = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for name in names:
            while name and name not in MODULES:
                name = name.rsplit(".", 1)[0] if "." in name else ""
            if name and name != module:
                found.add(name)
    return found


def test_the_walk_sees_imports() -> None:
    """The walker itself: it finds top-level and function-level imports of our modules."""
    assert "sweeplab.tracking.studies" in imported("sweeplab.sweep.callback")
    assert "sweeplab.sweep.summary" in imported("sweeplab.sweep.callback")  # imported inside close()
    assert "sweeplab.compat" in imported("sweeplab.cli")


def test_no_import_circles() -> None:
    graph = {module: imported(module) for module in MODULES}
    # A package's __init__ is imported with any of its modules; it must not import them back.
    for module in MODULES:
        parent = module.rsplit(".", 1)[0]
        if parent in MODULES and parent != module:
            graph[module].add(parent)
    circles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for nxt in sorted(graph[module]):
            if state.get(nxt) == 1:
                circles.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert circles == [], "import circles: " + "; ".join(" -> ".join(c) for c in circles)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_stay_small(module: str) -> None:
    lines = len(MODULES[module].read_text().splitlines())
    assert lines <= MAX_LINES, f"{module} has {lines} lines; split it by concept (at most about {MAX_LINES})"


def long_functions(root: Path, limit: int) -> list[str]:
    """`module.function (N lines)` for every function (methods and nested ones too) over `limit` lines."""
    found = []
    for path in sorted(root.rglob("*.py")):
        module = ".".join(path.relative_to(root).with_suffix("").parts)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > limit and f"{module}.{node.name}" not in LONG_ELSEWHERE:
                    found.append(f"{module}.{node.name} ({lines} lines)")
    return found


def test_functions_read_in_one_screen() -> None:
    """No function in src/ is longer than MAX_FUNCTION_LINES (decorators aside): split it by what it does."""
    offenders = long_functions(PACKAGE.parent, MAX_FUNCTION_LINES)
    assert offenders == [], "functions too long to read in one screen:\n" + "\n".join(offenders)
    assert long_functions(PACKAGE.parent, 5), "the walk finds functions at all"


# Other libraries' private names: an underscore module or attribute reached through a library we use.
PRIVATE = re.compile(
    r"\b(hydra|hydra_plugins|mlflow|keras_tuner|keras|joblib|loky|threading|atexit|tensorflow|optuna)"
    r"[\w.]*\.(_(?!_)\w+|src)\b|from (hydra|mlflow|keras_tuner)\S* import _|\._(tried_so_far|is_worker|random_values"
    r"|tracking_client|active_run_stack|executor|shutdown|run_exitfuncs)\b"
)


def test_private_names_of_other_libraries_only_in_compat() -> None:
    offenders = [
        f"{module}:{number}: {line.strip()}"
        for module, path in MODULES.items()
        if module != "sweeplab.compat"
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if PRIVATE.search(line) and not line.lstrip().startswith("#")
    ]
    assert offenders == [], "private names outside sweeplab.compat:\n" + "\n".join(offenders)
    assert PRIVATE.search("import hydra._internal.utils as hydra_utils")  # the pattern itself catches them
    assert PRIVATE.search("store = client._tracking_client.store")


def test_mlflow_runs_are_created_in_two_modules() -> None:
    creating = re.compile(r"\b(create_run|start_run)\(")
    found = {module for module, path in MODULES.items() if creating.search(path.read_text())}
    assert found <= {"sweeplab.tracking.runs", "sweeplab.tracking.studies"}, found


def test_one_place_prints_errors_and_exits() -> None:
    """`sweeplab: error:` lines and exit statuses come from sweeplab.cli, not from every module."""
    printing = re.compile(r"""["']\w*: error: |sys\.exit\(""")
    found = {module for module, path in MODULES.items() if printing.search(path.read_text())}
    assert {m for m in found if not m.startswith("sweeplab.cli")} == set(), found
    error_class = re.compile(r"^class \w+\((\w*Error|Exception)", re.M)
    errors = {module for module, path in MODULES.items() if error_class.search(path.read_text())}
    assert errors == {"sweeplab.errors"}, errors


HEAVY = ("tensorflow", "keras", "jax", "mlflow", "pandas", "hydra", "omegaconf", "matplotlib")


def test_import_sweeplab_is_light_and_names_its_api() -> None:
    """`import sweeplab` imports none of the heavy libraries (Hydra's plugin scan and the launching process
    import it); its public names resolve on first use, and each is defined where the package says."""
    code = (
        "import sys, sweeplab\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))\n"
        "from sweeplab import errors\n"
        "assert sweeplab.SweeplabError is errors.SweeplabError and 'run' in dir(sweeplab)\n"
        "try:\n    sweeplab.no_such_name\nexcept AttributeError as err:\n    print(err)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(PACKAGE.parent)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["[]", "module 'sweeplab' has no attribute 'no_such_name'"]
    api = ast.literal_eval(re.search(r"_API = (\{.*?\n\})", (PACKAGE / "__init__.py").read_text(), re.S).group(1))
    for name, module in api.items():
        tree = ast.parse(MODULES[module].read_text())
        defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef)}
        assert name in defined, f"sweeplab.{name}: {module} defines no {name}"
        assert name not in MODULES and f"sweeplab.{name}" not in MODULES, f"{name} would hide a module"


# Feature packages: what sweeplab does with a config. The core (config, schema, validation, data, errors)
# sits under them: it must load and check data without the tuner, the pruner or the tracking code.
FEATURES = ("tuning", "pruning", "seeds", "sweep", "compare", "tracking", "perf", "cli")
CORE = ("sweeplab.data", "sweeplab.validate")


def reached(module: str) -> set[str]:
    """Every sweeplab module `module` imports, directly or through the modules it imports."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        for name in imported(todo.pop()) - seen:
            seen.add(name)
            todo.append(name)
    return seen


def is_feature(module: str) -> bool:
    parts = module.split(".")
    return len(parts) > 1 and parts[1] in FEATURES


@pytest.mark.parametrize("module", CORE)
def test_core_modules_import_no_feature_package(module: str) -> None:
    features = sorted(m for m in reached(module) if is_feature(m))
    assert features == [], f"{module} reaches feature modules: {features}"


def test_compat_imports_nothing_of_sweeplab() -> None:
    """compat holds other libraries' private names only: what it needs of ours is passed in as arguments."""
    assert imported("sweeplab.compat") == set()


def test_the_tracking_uri_is_looked_up_in_one_place() -> None:
    reading = re.compile(r"""environ(\.get\(|\[)["']MLFLOW_TRACKING_URI""")
    found = {module for module, path in MODULES.items() if reading.search(path.read_text())}
    assert found == {"sweeplab.tracking.store"}, found


# The study's environment variables: read (StudyContext.from_environ) and named in one module, written in one.
STUDY_ENV = re.compile(r"SWEEPLAB_(PARENT_RUN_ID|STUDY_\w+)|\b(PARENT_RUN|JOB_TOTAL|AXES|STARTED)_ENV\b")
ENV_WRITE = re.compile(r"os\.environ(\.update\(|\[[^]]+\]\s*=|\.setdefault\()|hydra\.job\.env_set")


def test_the_study_travels_as_a_value() -> None:
    """SWEEPLAB_PARENT_RUN_ID and its siblings are named only in tracking.context (which reads them back); they
    are handed to jobs (hydra.job.env_set) only in sweep.plan; everything else is passed a StudyContext."""
    naming = {module for module, path in MODULES.items() if STUDY_ENV.search(path.read_text())}
    assert naming == {"sweeplab.tracking.context"}, naming
    handing = {module for module, path in MODULES.items() if "++hydra.job.env_set" in path.read_text()}
    assert handing == {"sweeplab.sweep.plan"}, handing
    reading = {module for module, path in MODULES.items() if ".from_environ(" in path.read_text()}
    assert reading == {"sweeplab.cli.sweep"}, reading  # once, where a job starts
    # Nothing touches os.environ around the study's value inside one process (Study.handed_to_jobs did).
    for module in ("sweeplab.tracking.studies", "sweeplab.tracking.runs", "sweeplab.sweep.plan", "sweeplab.sweep.job"):
        assert not ENV_WRITE.search(MODULES[module].read_text().replace("hydra.job.env_set", "")), module
    assert STUDY_ENV.search("os.environ.get(tags.PARENT_RUN_ENV)") and ENV_WRITE.search("os.environ[key] = v")


# Ending the process: sys.exit, os._exit, exit()/quit() and SystemExit raised by hand.
EXITING = re.compile(r"\b(sys\.exit|os\._exit|_exit)\(|(?<![\w.])(exit|quit)\(|\braise SystemExit\b")


def test_only_the_cli_ends_the_process() -> None:
    """Library code raises (sweeplab.errors); only sweeplab.cli imports the CLI, prints the error line and exits."""
    outside = {module: path for module, path in MODULES.items() if not module.startswith("sweeplab.cli")}
    importing = {module for module in outside if any(m.startswith("sweeplab.cli") for m in imported(module))}
    assert importing == set(), f"modules outside sweeplab.cli import it: {importing}"
    exiting = [
        f"{module}:{number}: {line.strip()}"
        for module, path in outside.items()
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if EXITING.search(line.split("#", 1)[0]) and not line.lstrip().startswith(('"', "'"))
    ]
    assert exiting == [], "calls that end the process outside sweeplab.cli:\n" + "\n".join(exiting)
    for call in ("sys.exit(1)", "os._exit(0)", "exit(2)", "quit()", "raise SystemExit(3)"):
        assert EXITING.search(call), call
    assert not EXITING.search("exit_status(error)") and not EXITING.search("self.exit(x)")
