"""What the access log and /metrics say about a request whose client hung up."""

import asyncio

from starlette.responses import PlainTextResponse

from app.middleware.observability import CLIENT_CLOSED_REQUEST, Metrics, ObservabilityMiddleware


def _count(metrics: Metrics, status: str) -> float:
    for metric in metrics.requests.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total") and sample.labels.get("status") == status:
                return sample.value
    return 0.0


def _serve(messages: list[dict], answer_status: int) -> Metrics:
    """One POST through the middleware; the app reads the body, then answers."""

    async def app(scope, receive, send):
        while True:  # read the body as Starlette does: until it ends or the client leaves
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body"):
                break
        await PlainTextResponse("x", status_code=answer_status)(scope, receive, send)

    metrics = Metrics()
    middleware = ObservabilityMiddleware(app, metrics=metrics)
    queue = list(messages)

    async def receive():
        return queue.pop(0) if queue else {"type": "http.disconnect"}

    async def send(_message):
        pass

    scope = {"type": "http", "method": "POST", "path": "/v1/claims", "headers": []}
    asyncio.run(middleware(scope, receive, send))
    return metrics


def test_a_client_that_hangs_up_mid_body_is_counted_as_499_not_400():
    metrics = _serve([{"type": "http.request", "body": b'{"te', "more_body": True},
                      {"type": "http.disconnect"}], answer_status=400)
    assert _count(metrics, str(CLIENT_CLOSED_REQUEST)) == 1
    assert _count(metrics, "400") == 0


def test_a_real_400_stays_a_400():
    metrics = _serve([{"type": "http.request", "body": b"{", "more_body": False}],
                     answer_status=400)
    assert _count(metrics, "400") == 1
    assert _count(metrics, str(CLIENT_CLOSED_REQUEST)) == 0
