"""Cold import time of each function's handler module, in a fresh process each time.

This is the part of a Lambda cold start the code controls: what app.py imports.
"""

import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_PROBE = """
import importlib.util, sys, time
start = time.perf_counter()
spec = importlib.util.spec_from_file_location("app", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
print((time.perf_counter() - start) * 1000)
"""


def measure(app_file: Path, runs: int) -> list[float]:
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'layers' / 'shared'}{os.pathsep}{ROOT}"}
    # A first run compiles the .pyc files, as the layer build does; the timed runs find them.
    subprocess.run([sys.executable, "-c", _PROBE, str(app_file)], env=env, check=True, capture_output=True)
    return [
        float(
            subprocess.run(
                [sys.executable, "-c", _PROBE, str(app_file)], env=env, check=True, capture_output=True, text=True
            ).stdout
        )
        for _ in range(runs)
    ]


def main(runs: int = 7) -> None:
    print(f"cold import of each handler module (fresh process, {runs} runs, milliseconds)")
    print(f"  {'function':<14} {'median':>8} {'min':>8} {'max':>8}")
    for app_file in sorted((ROOT / "functions").glob("*/app.py")):
        timings = measure(app_file, runs)
        name = app_file.parent.name
        print(f"  {name:<14} {statistics.median(timings):8.1f} {min(timings):8.1f} {max(timings):8.1f}")


if __name__ == "__main__":
    main()
