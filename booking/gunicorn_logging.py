"""gunicorn's own logs (errors, and the access log when enabled) as JSON lines."""

from gunicorn.glogging import Logger

from .http.request_log import json_formatter


class JsonLogger(Logger):
    def setup(self, cfg):
        super().setup(cfg)
        formatter = json_formatter()
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                handler.setFormatter(formatter)

    def access(self, resp, req, environ, request_time):
        if not self.access_log_enabled:
            return
        status = resp.status
        if isinstance(status, str):
            status = int(status.split(None, 1)[0])
        headers = dict((name.lower(), value) for name, value in resp.headers)
        self.access_log.info(
            "access",
            extra={
                "request_id": headers.get("x-request-id"),
                "method": environ.get("REQUEST_METHOD"),
                "path": environ.get("PATH_INFO"),
                "status": status,
                "duration_ms": round(request_time.total_seconds() * 1000, 3),
                "client": environ.get("REMOTE_ADDR"),
                "bytes": getattr(resp, "sent", None),
            },
        )
