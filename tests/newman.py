"""Run a Postman collection with Newman, the pinned one in tests/node (`make node`).

Used by tests/test_postman.py and `make postman` (tests/postman_run.py) on
docs/postman/booking.postman_collection.json, and fit for any collection file,
e.g. one converted from the served /api/openapi.json by openapi-to-postmanv2.

    result = newman.run(collection, {"baseUrl": url, "adminPassword": pw}, environment)
    assert result.returncode == 0, result.failures()
    result.report["run"]["stats"]["assertions"]  # {"total": ..., "failed": ...}
"""

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NODE_DIR = ROOT / "tests" / "node"
NEWMAN = NODE_DIR / "node_modules" / ".bin" / "newman"


class NewmanMissing(RuntimeError):
    """Node or the pinned Newman is not installed; the message says how to get them."""


def command() -> list[str]:
    """The Newman to run, or NewmanMissing."""
    if shutil.which("node") is None:
        raise NewmanMissing("node is not on PATH (apt-get install nodejs npm, then make node)")
    if not NEWMAN.exists():
        raise NewmanMissing(f"{NEWMAN} is missing: run `make node` (npm ci --prefix tests/node)")
    return [str(NEWMAN)]


@dataclass(frozen=True)
class NewmanRun:
    returncode: int
    report: dict  # the JSON reporter's export: {"collection", "environment", "run": {...}}
    output: str  # the CLI reporter's text when captured, else ""

    @property
    def stats(self) -> dict:
        """{"requests": {"total", "failed"}, "assertions": {...}, "testScripts": {...}, ...}"""
        return self.report["run"]["stats"]

    def executed_item_ids(self) -> list[str]:
        return [execution["item"]["id"] for execution in self.report["run"]["executions"]]

    def failures(self) -> str:
        """Each failure on a line, for an assertion's message; the CLI output if none."""
        lines = []
        for failure in self.report["run"]["failures"]:
            error = failure["error"]
            where = failure.get("source", {}).get("name", "?")
            test = error.get("test") or error.get("name", "")
            lines.append(f"{where}: {test}: {error.get('message', '')}")
        return "\n".join(lines) or self.output[-5000:]


def run(
    collection: Path,
    env_vars: dict[str, str] | None = None,
    environment: Path | None = None,
    *,
    capture: bool = True,
    timeout: float = 600,
    extra_args: tuple[str, ...] = (),
) -> NewmanRun:
    """`newman run` on a collection file with an optional environment file and values
    that override it (--env-var); the parsed JSON report. With capture=False the CLI
    reporter writes to this process's terminal (make postman)."""
    with tempfile.TemporaryDirectory(prefix="newman-") as tmp:
        report_path = Path(tmp) / "report.json"
        args = [*command(), "run", str(collection)]
        if environment is not None:
            args += ["--environment", str(environment)]
        for name, value in (env_vars or {}).items():
            args += ["--env-var", f"{name}={value}"]
        args += [
            "--reporters",
            "cli,json",
            "--reporter-json-export",
            str(report_path),
            "--timeout-request",
            "30000",
            *(["--color", "off"] if capture else []),
            *extra_args,
        ]
        completed = subprocess.run(
            args, cwd=ROOT, capture_output=capture, text=True, timeout=timeout, check=False
        )
        output = (completed.stdout or "") + (completed.stderr or "") if capture else ""
        if not report_path.exists():
            raise RuntimeError(
                f"newman exited with {completed.returncode} and wrote no report\n{output[-5000:]}"
            )
        report = json.loads(report_path.read_text(encoding="utf-8"))
    return NewmanRun(completed.returncode, report, output)
