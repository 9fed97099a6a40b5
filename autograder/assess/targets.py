"""How the assessment talks to a service: the course contract (FastAPI or any other server) or TorchServe's API.

Both adapters give the probes the same things: a readiness probe, a prediction in the contract's shape, and the
list of bad requests. The probes never know which kind of server they are scoring.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from autograder.assess import images

if TYPE_CHECKING:
    import httpx

REQUEST_TIMEOUT_S = 30.0  # a whole answer, wall clock: connecting, sending, 1xx lines, headers and body


@dataclass
class Reply:
    """What came back from one request: a status and decoded JSON, or the transport error when nothing came back."""

    status: int | None
    body: Any = None
    text: str = ""
    elapsed_ms: float = 0.0
    error: str | None = None
    is_json: bool = False

    @property
    def answered(self) -> bool:
        return self.status is not None

    def describe(self) -> str:
        if self.status is None:
            return f"no answer ({self.error})"
        from mlinfra.base.output import printable

        snippet = printable(self.text.strip().replace("\n", " "))  # the service's words: never raw to a terminal
        snippet = snippet if len(snippet) <= 120 else snippet[:117] + "..."
        return f"{self.status} {snippet}" if snippet else f"{self.status} (empty body)"


MAX_REPLY_BYTES = 1 << 20  # far more than any answer of the contract; a service cannot make the grader hold more


def send(client: httpx.Client, method: str, url: str, **kwargs: Any) -> Reply:
    """One request, timed from send to the last byte of the answer; transport failures become a Reply too. The
    answer is read up to MAX_REPLY_BYTES: a service streaming without end is cut off, and that is its reply. The
    whole answer has REQUEST_TIMEOUT_S (and the budgets in `deadlines`), however it trickles in."""
    import httpx

    from autograder.assess import deadlines
    from mlinfra.base.bounded_http import read_capped

    start = time.perf_counter()
    until, why = deadlines.for_request(REQUEST_TIMEOUT_S)
    if until <= time.monotonic():
        return Reply(None, error=why)
    deadlines.set_current(until)
    try:
        with client.stream(method, url, **kwargs) as response:
            # Raw, then decoded within the cap: httpx's own decoding would inflate a gzip bomb whole first.
            content = read_capped(response.iter_raw(), response.headers.get("content-encoding"), MAX_REPLY_BYTES)
    except ValueError as exc:  # bounded_http.TooLarge included: the answer is cut off, and that is its reply
        return Reply(None, elapsed_ms=(time.perf_counter() - start) * 1000, error=str(exc))
    except httpx.HTTPError as exc:
        elapsed = (time.perf_counter() - start) * 1000
        if isinstance(exc, httpx.TimeoutException) and time.monotonic() >= until - 0.05:
            return Reply(None, elapsed_ms=elapsed, error=why)
        return Reply(None, elapsed_ms=elapsed, error=f"{type(exc).__name__}: {exc}".rstrip(": "))
    finally:
        deadlines.set_current(None)
    elapsed = (time.perf_counter() - start) * 1000
    text = content[:2000].decode("utf-8", errors="replace")
    try:
        body, is_json = json.loads(content), True
    except (ValueError, RecursionError):  # RecursionError: JSON nested thousands deep
        body, is_json = None, False
    return Reply(response.status_code, body, text, elapsed, None, is_json)


def new_client() -> httpx.Client:
    """One keep-alive connection's worth of client; the probes reuse it so timings exclude TCP set-up."""
    import httpx

    # A proxy from the environment may be needed for a deployed --url, never for this machine's own services.
    from autograder.assess import deadlines

    direct = {"all://127.0.0.1": None, "all://localhost": None, "all://[::1]": None}
    from mlinfra.base.bounded_http import IDENTITY

    return httpx.Client(
        timeout=httpx.Timeout(REQUEST_TIMEOUT_S, connect=5.0), follow_redirects=False, mounts=direct, headers=IDENTITY,
        transport=deadlines.transport(),
    )


@dataclass
class BadRequest:
    """A bad input probe: its name, what it sends, and how."""

    name: str
    what: str
    send: Callable[[httpx.Client], Reply] = field(repr=False)


class ContractTarget:
    """A service that honours `mlinfra.contract`: GET /health, POST /predict with the multipart field `file`."""

    kind = "contract"

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")

    def describe(self) -> str:
        return self.base_url

    def url(self, path: str) -> str:
        return self.base_url + path

    def ready(self, client: httpx.Client) -> Reply:
        from mlinfra.contract import HEALTH_PATH

        return send(client, "GET", self.url(HEALTH_PATH))

    def readiness_rule(self) -> str:
        return "GET /health answers 200 with JSON"

    def predict(self, client: httpx.Client, sample: images.Sample) -> Reply:
        from mlinfra.contract import PREDICT_PATH, UPLOAD_FIELD

        files = {UPLOAD_FIELD: (sample.filename, sample.data, sample.content_type)}
        return send(client, "POST", self.url(PREDICT_PATH), files=files)

    def bad_requests(self) -> list[BadRequest]:
        from mlinfra.contract import PREDICT_PATH, UPLOAD_FIELD

        url = self.url(PREDICT_PATH)

        def upload(name: str, data: bytes, ctype: str) -> Callable[[httpx.Client], Reply]:
            return lambda c: send(c, "POST", url, files={UPLOAD_FIELD: (name, data, ctype)})

        return [
            BadRequest(
                "not an image",
                "a text file as the image",
                upload("notes.txt", images.not_an_image(), "text/plain"),
            ),
            BadRequest(
                "corrupt image",
                "PNG header then garbage",
                upload("broken.png", images.corrupt_png(), "image/png"),
            ),
            BadRequest("empty upload", "a file of 0 bytes", upload("empty.png", b"", "image/png")),
            BadRequest(
                "12 MB upload",
                "12 MB, over the 10 MB limit",
                upload("huge.png", images.oversize_png(), "image/png"),
            ),
            BadRequest(
                "missing field",
                f"a form without the '{UPLOAD_FIELD}' field",
                lambda c: send(c, "POST", url, data={"note": "no image here"}, files={"other": ("x", b"")}),
            ),
            BadRequest("wrong method", "GET instead of POST", lambda c: send(c, "GET", url)),
        ]


class TorchServeTarget:
    """TorchServe's inference API: GET /ping, POST /predictions/NAME with the image as the raw body.

    TorchServe answers a classifier's prediction as ``{label: confidence}`` (or a one-item list of it); the adapter
    turns that into the contract's ``{"predictions": [...]}``, ordered by confidence, because a JSON object's key
    order carries no meaning. `/ping` can say Healthy while the model's worker crash-loops (docs/decisions.md, Serving), so readiness
    also needs a real prediction.
    """

    kind = "torchserve"

    def __init__(self, base_url: str, model: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model

    def describe(self) -> str:
        return f"{self.base_url} (TorchServe model {self.model})"

    @property
    def predictions_url(self) -> str:
        return f"{self.base_url}/predictions/{self.model}"

    def readiness_rule(self) -> str:
        return f"GET /ping answers 200 with JSON and POST /predictions/{self.model} answers 200"

    def ready(self, client: httpx.Client) -> Reply:
        ping = send(client, "GET", self.base_url + "/ping")
        if ping.status != 200 or not ping.is_json:
            return ping
        probe = self.predict(client, images.make_sample("PNG", "L", 28))
        if probe.status != 200:
            probe.text = f"/ping is {ping.status} but a prediction answered {probe.describe()}"
            return probe
        return ping

    def predict(self, client: httpx.Client, sample: images.Sample) -> Reply:
        reply = send(
            client,
            "POST",
            self.predictions_url,
            content=sample.data,
            headers={"Content-Type": sample.content_type},
        )
        if reply.status == 200 and reply.is_json:
            reply.body = to_contract(reply.body)
        return reply

    def bad_requests(self) -> list[BadRequest]:
        url = self.predictions_url

        def raw(data: bytes, ctype: str) -> Callable[[httpx.Client], Reply]:
            return lambda c: send(c, "POST", url, content=data, headers={"Content-Type": ctype})

        return [
            BadRequest("not an image", "a text body", raw(images.not_an_image(), "text/plain")),
            BadRequest("corrupt image", "PNG header then garbage", raw(images.corrupt_png(), "image/png")),
            BadRequest("empty upload", "an empty body", raw(b"", "image/png")),
            BadRequest(
                "12 MB upload", "12 MB, over the 10 MB limit", raw(images.oversize_png(), "image/png")
            ),
            BadRequest(
                "missing field",
                "a form with no file in it",
                lambda c: send(c, "POST", url, data={"note": "no image here"}),
            ),
            BadRequest("wrong method", "DELETE instead of POST", lambda c: send(c, "DELETE", url)),
        ]


def to_contract(body: Any) -> Any:
    """TorchServe's ``{label: confidence}`` (or ``[{...}]``) -> ``{"predictions": [...]}``; other shapes unchanged."""
    if isinstance(body, list) and len(body) == 1 and isinstance(body[0], dict):
        body = body[0]
    if not isinstance(body, dict) or "predictions" in body or not body:
        return body
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in body.values()):
        return body
    ranked = sorted(body.items(), key=lambda kv: kv[1], reverse=True)
    return {"predictions": [{"label": str(k), "confidence": v} for k, v in ranked]}
