"""Network addresses fusionzoo connects to (a Ray cluster, an MLflow server), parsed and probed up front.

A client library that cannot reach its server retries for minutes before it says so (Ray's GCS client
about 35 s per attempt × 20 attempts, MLflow's HTTP client 7 retries with a 120 s timeout each). So a
command first checks the address's form (:func:`host_port`) and opens one TCP connection to it with a
short timeout (:func:`unreachable`): a wrong address is reported at once, naming it, before any data
is prepared. :func:`mask_url` hides the password of a URL in messages and logs.
"""

from __future__ import annotations

import ipaddress
import re
import socket

__all__ = ["PROBE_TIMEOUT", "host_port", "mask_url", "unreachable"]

PROBE_TIMEOUT = 10.0  # seconds: one TCP connect to a server that should answer in milliseconds

_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?(\.[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?)*\.?$"
)


def host_port(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (IPv6 as ``[ADDR]:PORT``) → ``(host, port)``; ``ValueError`` saying what is wrong."""
    host, sep, port = text.strip().rpartition(":")
    if not sep or not host:
        raise ValueError("expected HOST:PORT")
    if host.startswith("[") and host.endswith("]"):
        try:
            host = str(ipaddress.IPv6Address(host[1:-1]))
        except ValueError:
            raise ValueError(f"{host} is not an IPv6 address") from None
    elif not _HOSTNAME.match(host):
        raise ValueError(f"{host!r} is not a host name or IP address (an IPv6 address goes in [brackets])")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"port {port!r} is not a number from 1 to 65535")
    return host, int(port)


def unreachable(host: str, port: int, timeout: float = PROBE_TIMEOUT) -> str | None:
    """Why a TCP connection to ``host:port`` fails (``None``: something listens there)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except socket.gaierror as exc:
        return f"the host name does not resolve: {exc.strerror or exc}"
    except TimeoutError:
        return f"no answer within {timeout:g} s"
    except ConnectionRefusedError:
        return "connection refused: nothing listens on that port"
    except OSError as exc:
        return exc.strerror or str(exc)


def mask_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for messages and logs)."""
    if url.startswith("journal:") or "://" not in url:
        return url
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not parseable by SQLAlchemy: mask user:password@ by hand
        scheme, _, rest = url.partition("://")
        creds, at, host = rest.rpartition("@")
        if not at:
            return url
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
