"""gunicorn's gthread worker, stopped gracefully by Ctrl-C as by SIGTERM.

gunicorn takes SIGINT and SIGQUIT for a quick stop: the master sends its
workers SIGQUIT, and a worker's handler shuts its thread pool down and raises
SystemExit from inside the signal handler. Ctrl-C in a terminal signals the
whole process group, so each worker gets SIGINT from the terminal and SIGQUIT
from the master a moment later. When the second signal arrives while the first
handler is inside ThreadPoolExecutor.shutdown(), which holds a plain (not
reentrant) lock, the second handler waits for that lock in the same thread,
forever: the worker hangs until the master kills it at graceful_timeout
("Worker (pid:N) was sent SIGKILL!"). And a quick stop drops the requests that
clients sent on kept-alive connections.

Here SIGINT stops a worker as SIGTERM does (gunicorn.conf.py makes the master
take it so too): the requests in flight are finished and answered, and a
request on a kept-alive connection gets its answer with "Connection: close". A
quit signal that arrives while one is being handled is ignored. A stopping
worker takes the connections already waiting in the listen backlog and closes
its listening socket, so a client that connects later is refused rather than
accepted by the kernel and reset, its request unanswered, when the worker exits.
"""

import errno
import signal

from gunicorn.workers import gthread


class ThreadWorker(gthread.ThreadWorker):
    _quitting = False

    def init_signals(self):
        super().init_signals()
        signal.signal(signal.SIGINT, self.handle_exit)
        signal.siginterrupt(signal.SIGINT, False)

    def handle_quit(self, sig, frame):
        if self._quitting:
            return  # the first quit signal's handler is running: it exits
        self._quitting = True
        super().handle_quit(sig, frame)

    def set_accept_enabled(self, enabled):
        super().set_accept_enabled(enabled)
        if not enabled and not self.alive:
            self._take_backlog_and_close()

    def _take_backlog_and_close(self):
        for listener in self.sockets:
            if listener.sock is None:
                continue
            listener.setblocking(False)
            while True:
                try:
                    client, address = listener.accept()
                except OSError as error:
                    if error.errno == errno.ECONNABORTED:
                        continue
                    break  # EAGAIN: the backlog is empty
                self.nr_conns += 1
                client.setblocking(True)
                self.enqueue_req(gthread.TConn(self.cfg, client, address, listener.getsockname()))
            listener.close()
