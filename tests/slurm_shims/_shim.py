"""A local stand-in for SLURM, enough for submitit's SlurmExecutor (stdlib only).

State lives in $SLURM_SHIM_DIR: ``counter`` (next job id), ``jobs/<id>/script.sh``,
``tasks/<task>`` (its state), ``pids/<task>`` (its running process) and ``requeue/<task>``
(set by ``scontrol requeue``), where a task is ``<id>_<index>`` for an array and ``<id>`` for a
plain job. As on a cluster, ``sbatch`` prints ``Submitted batch job <id>`` and returns at once;
the tasks start about a second later in a detached runner that honours the ``%N`` throttle,
sets the SLURM_* variables, creates the ``%A_%a`` log folder and reruns a requeued task.
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


def _directives(script: str) -> dict[str, str]:
    out = {}
    for line in script.splitlines():
        m = re.match(r"#SBATCH --([\w-]+)(?:=(.*))?", line)
        if m:
            out[m.group(1)] = m.group(2) or ""
    return out


def _tasks(job_id: str, flags: dict) -> tuple[list[str], int]:
    """Task names and how many may run at once."""
    if "array" not in flags:
        return [job_id], 1
    m = re.fullmatch(r"(\d+)-(\d+)(?:%(\d+))?", flags["array"])
    names = [f"{job_id}_{i}" for i in range(int(m.group(1)), int(m.group(2)) + 1)]
    return names, int(m.group(3) or len(names))


def _substitute(pattern: str, task: str) -> str:
    job_id, _, index = task.partition("_")
    for key, value in (("%A", job_id), ("%a", index), ("%j", task), ("%t", "0")):
        pattern = pattern.replace(key, value)
    return pattern


def sbatch(argv: list[str]) -> None:
    if argv and argv[0] == "--shim-run":
        return _run_job(argv[1])
    script = Path(argv[-1]).read_text()
    counter = STATE / "counter"
    job_id = str(int(counter.read_text()) if counter.exists() else 1001)
    _write(counter, str(int(job_id) + 1))
    _write(STATE / "jobs" / job_id / "script.sh", script)
    for task in _tasks(job_id, _directives(script))[0]:
        _write(STATE / "tasks" / task, "PENDING")
    subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("sbatch")), "--shim-run", job_id],
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    print(f"Submitted batch job {job_id}")


def _run_job(job_id: str) -> None:
    time.sleep(1.0)  # jobs start after sbatch has returned (submitit moves the pickles then)
    script = (STATE / "jobs" / job_id / "script.sh").read_text()
    flags = _directives(script)
    tasks, throttle = _tasks(job_id, flags)
    slots = threading.Semaphore(throttle)
    threads = [threading.Thread(target=_run_task, args=(t, script, flags, slots)) for t in tasks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def _run_task(task: str, script: str, flags: dict, slots: threading.Semaphore) -> None:
    job_id, _, index = task.partition("_")
    with slots:
        attempt = 0
        while True:
            attempt += 1
            env = dict(os.environ)
            env.update(
                {
                    "SLURM_JOB_ID": job_id,
                    "SLURM_NTASKS": "1",
                    "SLURM_PROCID": "0",
                    "SLURM_LOCALID": "0",
                    "SLURM_NODEID": "0",
                    "SLURM_JOB_NUM_NODES": "1",
                    "SLURM_JOB_NODELIST": "localhost",
                    "SLURM_RESTART_COUNT": str(attempt - 1),
                }
            )
            if index:  # an array task has a job id of its own
                env["SLURM_JOB_ID"] = str(int(job_id) * 1000 + int(index))
                env["SLURM_ARRAY_JOB_ID"] = job_id
                env["SLURM_ARRAY_TASK_ID"] = index
            log = Path(_substitute(flags["output"], task))
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
    patterns = {}
    while argv and argv[0].startswith("--"):
        flag = argv.pop(0)
        if flag in ("--output", "--error"):
            patterns[flag] = argv.pop(0)
    if "SLURM_ARRAY_JOB_ID" in os.environ:
        task = f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    else:
        task = os.environ["SLURM_JOB_ID"]
    for stream, flag in ((1, "--output"), (2, "--error")):
        if flag in patterns:
            path = Path(_substitute(patterns[flag], task))
            path.parent.mkdir(parents=True, exist_ok=True)
            os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND), stream)
    _write(STATE / "pids" / task, str(os.getpid()))
    os.execvp(argv[0], argv)


def sacct(argv: list[str]) -> None:
    wanted = {argv[i + 1] for i, a in enumerate(argv) if a == "-j"}
    print("JobID|State|NodeList")
    for path in sorted((STATE / "tasks").glob("*")):
        if not path.name.endswith(".tmp") and (not wanted or path.name.split("_")[0] in wanted):
            print(f"{path.name}|{path.read_text()}|localhost")


def squeue(argv: list[str]) -> None:
    print("JOBID STATE")
    for path in sorted((STATE / "tasks").glob("*")):
        if not path.name.endswith(".tmp") and path.read_text() in (
            "PENDING",
            "RUNNING",
            "REQUEUED",
        ):
            print(f"{path.name} {path.read_text()}")


def scontrol(argv: list[str]) -> None:
    if argv[:1] != ["requeue"]:
        sys.exit(f"scontrol shim: unsupported {shlex.join(argv)}")
    for task in argv[1:]:
        _write(STATE / "requeue" / task, "")


def scancel(argv: list[str]) -> None:
    """scancel [--signal=SIG | --signal SIG] JOB...: signal the job's tasks (default: cancel)."""
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
        for pid_file in (STATE / "pids").glob("*"):
            if pid_file.name.endswith(".tmp"):
                continue
            if pid_file.name != job and not pid_file.name.startswith(f"{job}_"):
                continue
            if sig is None:
                _write(STATE / "cancelled" / pid_file.name, "")
            number = getattr(signal, "SIG" + (sig or "TERM").removeprefix("SIG"))
            try:
                os.kill(int(pid_file.read_text()), number)
            except ProcessLookupError:
                pass
