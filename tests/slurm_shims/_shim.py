"""A local stand-in for SLURM, enough for submitit's SlurmExecutor (stdlib only).

State lives in $SLURM_SHIM_DIR: ``counter`` (next job id), ``jobs/<id>/`` with the submitted
script, ``tasks/<id>_<index>`` (state), ``pids/<id>_<index>`` (the running process) and
``requeue/<id>_<index>`` (set by ``scontrol requeue``). As on a cluster, ``sbatch`` prints
``Submitted batch job <id>`` and returns at once; the array tasks start about a second later in
a detached runner that honours the ``%N`` throttle, sets the SLURM_* variables, creates the
``%A_%a`` log folder and reruns a task that was requeued.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

STATE = Path(os.environ["SLURM_SHIM_DIR"])


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _next_job_id() -> int:
    counter = STATE / "counter"
    job_id = int(counter.read_text()) if counter.exists() else 1001
    _write(counter, str(job_id + 1))
    return job_id


def _directives(script: str) -> dict[str, str]:
    out = {}
    for line in script.splitlines():
        m = re.match(r"#SBATCH --([\w-]+)(?:=(.*))?", line)
        if m:
            out[m.group(1)] = m.group(2) or ""
    return out


def _substitute(pattern: str, job_id: str, array_id: str, index: str) -> str:
    return (
        pattern.replace("%A", array_id)
        .replace("%a", index)
        .replace("%j", job_id)
        .replace("%t", "0")
    )


def sbatch(argv: list[str]) -> None:
    if argv and argv[0] == "--shim-run":
        return _run_array(argv[1])
    script_path = Path(argv[-1])
    job_id = _next_job_id()
    job_dir = STATE / "jobs" / str(job_id)
    job_dir.mkdir(parents=True)
    (job_dir / "script.sh").write_text(script_path.read_text())
    array = _directives(script_path.read_text()).get("array", "0-0")
    m = re.fullmatch(r"(\d+)-(\d+)(?:%(\d+))?", array)
    first, last = int(m.group(1)), int(m.group(2))
    for index in range(first, last + 1):
        _write(STATE / "tasks" / f"{job_id}_{index}", "PENDING")
    subprocess.Popen(
        [sys.executable, __file__.replace("_shim.py", "sbatch"), "--shim-run", str(job_id)],
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=os.environ.copy(),
    )
    print(f"Submitted batch job {job_id}")


def _run_array(job_id: str) -> None:
    time.sleep(1.0)  # jobs start after sbatch has returned (submitit moves the pickles then)
    script = (STATE / "jobs" / job_id / "script.sh").read_text()
    flags = _directives(script)
    m = re.fullmatch(r"(\d+)-(\d+)(?:%(\d+))?", flags.get("array", "0-0"))
    indices = list(range(int(m.group(1)), int(m.group(2)) + 1))
    slots = threading.Semaphore(int(m.group(3) or len(indices)))
    threads = [
        threading.Thread(target=_run_task, args=(job_id, i, script, flags, slots)) for i in indices
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def _run_task(
    job_id: str, index: int, script: str, flags: dict, slots: threading.Semaphore
) -> None:
    task = f"{job_id}_{index}"
    with slots:
        attempt = 0
        while True:
            attempt += 1
            env = dict(os.environ)
            env.update(
                {
                    "SLURM_JOB_ID": str(int(job_id) * 1000 + index),
                    "SLURM_ARRAY_JOB_ID": job_id,
                    "SLURM_ARRAY_TASK_ID": str(index),
                    "SLURM_NTASKS": "1",
                    "SLURM_PROCID": "0",
                    "SLURM_LOCALID": "0",
                    "SLURM_NODEID": "0",
                    "SLURM_JOB_NUM_NODES": "1",
                    "SLURM_JOB_NODELIST": "localhost",
                    "SLURM_RESTART_COUNT": str(attempt - 1),
                }
            )
            log = Path(_substitute(flags["output"], task, job_id, str(index)))
            log.parent.mkdir(parents=True, exist_ok=True)
            _write(STATE / "tasks" / task, "RUNNING")
            with open(log, "a") as out:
                rc = subprocess.call(["bash", "-c", script], env=env, stdout=out, stderr=out)
            flag = STATE / "requeue" / task
            if flag.exists():
                flag.unlink()
                _write(STATE / "tasks" / task, "REQUEUED")
                continue
            if (STATE / "cancelled" / task).exists():
                _write(STATE / "tasks" / task, "CANCELLED")
            else:
                _write(STATE / "tasks" / task, "COMPLETED" if rc == 0 else "FAILED")
            return


def srun(argv: list[str]) -> None:
    """srun --unbuffered --output OUT [--error ERR] CMD...: run CMD here, as the task."""
    out = err = None
    while argv and argv[0].startswith("--"):
        flag = argv.pop(0)
        if flag in ("--output", "--error"):
            value = argv.pop(0)
            out, err = (value, err) if flag == "--output" else (out, value)
    array_id, index = os.environ["SLURM_ARRAY_JOB_ID"], os.environ["SLURM_ARRAY_TASK_ID"]
    task = f"{array_id}_{index}"
    for stream, pattern in ((1, out), (2, err)):
        if pattern:
            path = Path(_substitute(pattern, task, array_id, index))
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
            os.dup2(fd, stream)
    _write(STATE / "pids" / task, str(os.getpid()))
    os.execvp(argv[0], argv)


def sacct(argv: list[str]) -> None:
    wanted = [argv[i + 1] for i, a in enumerate(argv) if a == "-j"]
    print("JobID|State|NodeList")
    for path in sorted((STATE / "tasks").glob("*")):
        if path.name.endswith(".tmp"):
            continue
        if not wanted or path.name.split("_")[0] in wanted:
            print(f"{path.name}|{path.read_text()}|localhost")


def squeue(argv: list[str]) -> None:
    print("JOBID STATE")
    for path in sorted((STATE / "tasks").glob("*")):
        if path.read_text() in ("PENDING", "RUNNING", "REQUEUED"):
            print(f"{path.name} {path.read_text()}")


def scontrol(argv: list[str]) -> None:
    if argv[:1] != ["requeue"]:
        sys.exit(f"scontrol shim: unsupported {shlex.join(argv)}")
    for job in argv[1:]:
        _write(STATE / "requeue" / job, "")


def scancel(argv: list[str]) -> None:
    """scancel [--signal=SIG | --signal SIG] JOB...: signal the task (default: cancel it)."""
    sig, jobs = None, []
    while argv:
        a = argv.pop(0)
        if a.startswith("--signal="):
            sig = a.split("=", 1)[1]
        elif a in ("--signal", "-s"):
            sig = argv.pop(0)
        elif not a.startswith("-"):
            jobs.append(a)
    for job in jobs:
        tasks = [job] if "_" in job else [p.name for p in (STATE / "pids").glob(f"{job}_*")]
        for task in tasks:
            if sig is None:
                _write(STATE / "cancelled" / task, "")
            pid_file = STATE / "pids" / task
            if pid_file.exists():
                number = getattr(signal, "SIG" + (sig or "TERM").removeprefix("SIG"))
                try:
                    os.kill(int(pid_file.read_text()), number)
                except ProcessLookupError:
                    pass


if __name__ == "__main__":
    globals()[Path(sys.argv[0]).name](sys.argv[1:])
