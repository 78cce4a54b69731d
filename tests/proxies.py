"""nginx in front of several app hosts: deploy/nginx.conf with one `server` line per host.

`UpstreamsNginx(ports)` is tests/test_operations.py's `Nginx` (the deploy file's
server block on a loopback port, in a scratch prefix), generalised to an
upstream of many gunicorn instances: the deploy file's one `server` line is
repeated for each port, with the same parameters (max_fails, fail_timeout), as
its comment tells an operator to do. It also keeps an access log of which
upstream answered each request, keyed by the request id nginx passed on, so a
test can tell which host served what, including answers nginx made itself
(502, 504) that no app log has.
"""

import re
from pathlib import Path

from .test_operations import Nginx

# "|" between fields: $upstream_addr lists every upstream tried, separated by ", ".
ACCESS_LOG_FORMAT = "$booking_request_id|$status|$upstream_addr|$upstream_status"


class UpstreamsNginx(Nginx):
    def __init__(self, upstream_ports: list[int]):
        super().__init__(upstream_ports[0])
        conf = self.prefix / "nginx.conf"
        text = conf.read_text()
        line = re.compile(rf"^(\s*)server 127\.0\.0\.1:{upstream_ports[0]}\b([^;]*);", re.M)
        found = line.search(text)
        if found is None:
            raise RuntimeError("deploy/nginx.conf has no upstream `server` line to repeat")
        indent, parameters = found.groups()
        servers = "".join(
            f"{indent}server 127.0.0.1:{port}{parameters};" for port in upstream_ports
        )
        text = text[: found.start()] + servers + text[found.end() :]
        if "access_log off;" not in text:
            raise RuntimeError("the Nginx wrapper changed: no `access_log off;` to replace")
        text = text.replace(
            "access_log off;",
            f"log_format upstreams '{ACCESS_LOG_FORMAT}';\n"
            f"    access_log {self.prefix}/access.log upstreams;",
        )
        conf.write_text(text)
        self.upstream_ports = list(upstream_ports)

    def served_by(self) -> dict[str, list[tuple[int, list[str]]]]:
        """request id -> [(status nginx answered, upstream addresses it tried)], in log order.

        Read it before leaving the `with` block: the prefix is removed on exit.
        """
        found: dict[str, list[tuple[int, list[str]]]] = {}
        path = Path(self.prefix / "access.log")
        if not path.exists():
            return found
        for entry in path.read_text().splitlines():
            request_id, status, upstreams, _ = entry.split("|")
            tried = [addr.strip() for addr in upstreams.split(",") if addr.strip() != "-"]
            found.setdefault(request_id, []).append((int(status), tried))
        return found
