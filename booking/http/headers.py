"""Security headers on every response."""

from flask import Flask, request

_API_POLICY = "default-src 'none'; frame-ancestors 'none'"


def init_app(app: Flask) -> None:
    @app.after_request
    def secure_headers(response):
        headers = response.headers
        headers["X-Content-Type-Options"] = "nosniff"
        headers["X-Frame-Options"] = "DENY"
        headers["Referrer-Policy"] = "no-referrer"
        if not request.path.startswith("/api/docs"):
            # JSON answers: never cached (tickets change by the second), never rendered.
            headers["Cache-Control"] = "no-store"
            headers["Content-Security-Policy"] = _API_POLICY
        return response
