"""A worker whose clean stop hangs after a failed state write still exits, in time."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

from streams.worker.stopping import EXIT_WRITE_FAILED

# A stand-in for the Faust app whose crash() never finishes (the hang seen on a loaded
# machine): only crash_worker's own deadline can end this process.
SCRIPT = textwrap.dedent(
    """
    import asyncio
    from streams.worker.stopping import crash_worker

    class HangingApp:
        async def crash(self, error):
            await asyncio.Event().wait()

    async def main():
        crash_worker(HangingApp(), RuntimeError("refused"), grace=0.5)
        await asyncio.sleep(60)

    asyncio.run(main())
    """
)


def test_a_hanging_stop_ends_in_a_hard_exit_after_the_grace() -> None:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], check=False, capture_output=True, text=True, timeout=30
    )
    took = time.monotonic() - started
    assert done.returncode == EXIT_WRITE_FAILED, done.stderr
    assert "did not stop within 0 s of a failed state write: exiting" in done.stderr
    assert took < 20  # the script alone would sleep 60 s
