"""Issue 19's hang, made deterministic: a second quit signal inside the first one's handler.

A gunicorn gthread worker's SIGINT and SIGQUIT handler is ThreadWorker.handle_quit:
`self.tpool.shutdown(wait=False)`, then SystemExit. ThreadPoolExecutor.shutdown
holds `self._shutdown_lock` (threading.Lock, not reentrant) while it puts the
wake-up None on the work queue. Ctrl-C gives a worker SIGINT from the terminal and
SIGQUIT from the master about a millisecond later; Python runs a handler between
two bytecodes of the main thread, so if the SIGQUIT lands while the SIGINT handler
is in that locked section, the nested handler blocks on the lock its own thread holds.

This script makes the SIGQUIT land there every time (it is raised from inside the
queue's put), with the real handle_quit of gunicorn's ThreadWorker, or of ours:

    python -m tests.nested_quit gunicorn   # hangs: stack dumped after 3 s, exit 1
    python -m tests.nested_quit booking    # exits 0 at once (tests/test_stop.py runs both)
"""

import faulthandler
import os
import signal
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

from gunicorn.workers.gthread import ThreadWorker as GunicornWorker

from booking.gunicorn_worker import ThreadWorker as BookingWorker


class Cfg:
    def worker_int(self, worker):
        pass


def main(which: str) -> None:
    cls = {"gunicorn": GunicornWorker, "booking": BookingWorker}[which]
    worker = object.__new__(cls)  # only what handle_quit touches
    worker.cfg, worker.alive = Cfg(), True
    worker.tpool = ThreadPoolExecutor(max_workers=4)
    for future in [worker.tpool.submit(lambda: None) for _ in range(4)]:
        future.result()  # idle pool threads, as after serving requests

    queue = worker.tpool._work_queue
    real_put = queue.put

    class Queue:  # SimpleQueue's put cannot be patched: wrap the queue
        def put(self, item, *args, **kwargs):
            real_put(item, *args, **kwargs)
            if item is None and threading.current_thread() is threading.main_thread():
                os.kill(os.getpid(), signal.SIGQUIT)  # the master's, mid-shutdown

        def __getattr__(self, name):
            return getattr(queue, name)

    worker.tpool._work_queue = Queue()
    signal.signal(signal.SIGINT, worker.handle_quit)
    signal.signal(signal.SIGQUIT, worker.handle_quit)
    faulthandler.dump_traceback_later(3, exit=True)  # a hang: show where, exit 1
    os.kill(os.getpid(), signal.SIGINT)  # the terminal's Ctrl-C
    signal.pause()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "gunicorn")
