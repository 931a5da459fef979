"""The receivers of the signatures page (docs/integrate/signatures.md), run as printed against real deliveries of
every content type and method: the Python functions, the Node.js module and the openssl script."""
from urllib.parse import parse_qsl

import pytest
from lxml import etree
from standardwebhooks.webhooks import WebhookVerificationError

from crm import services as crm_services
from dispatcher import delivery as delivery_engine
from dispatcher.models import Delivery, DeliveryStatus
from dispatcher.rendering.xml import safe_parser
from tests.docs.pages import blocks, page
from tests.factories import webhook_create

SIGNATURES = "integrate/signatures.md"


def receiver_snippets() -> dict:
    """The Python blocks of the signatures page, executed."""
    namespace: dict = {}
    for block in blocks(page(SIGNATURES), "python"):
        exec(compile(block, f"docs/{SIGNATURES}", "exec"), namespace)  # noqa: S102 - our own documentation
    assert {"receive", "verify", "receive_any"} <= set(namespace), "the page's receiver functions"
    return namespace


@pytest.mark.parametrize(("method", "content_type", "parse"), [
    ("POST", "JSON", lambda payload, request: payload),
    ("PUT", "JSONARRAY", lambda payload, request: payload[0]),
    ("POST", "XML", lambda payload, request: {e.tag: e.text for e in etree.fromstring(payload, safe_parser())}),
    ("POST", "FORM", lambda payload, request: dict(parse_qsl(payload.decode()))),
    ("GET", "JSON", lambda payload, request: {k: v for k, v in request.args.items()}),
])
def test_the_python_receiver_verifies_every_content_type(receiver, owner, modules, method, content_type, parse):
    snippets = receiver_snippets()
    receiver.expect_request("/hook").respond_with_data("ok")
    hook = webhook_create(module=modules["Deals"], name=f"Books {method} {content_type}", url=receiver.url_for("/hook"),
                          method=method, content_type=content_type,
                          entity=[("deal", "${Deals.Deal Name}"), ("amount", "${Deals.Amount}")])
    deal = crm_services.record_create(module=modules["Deals"], owner=owner,
                                      values={"Deal_Name": "Café & <Co>", "Amount": "12.5"})
    delivery = delivery_engine.delivery_enqueue(webhook=hook, record=deal)
    delivery_engine.delivery_run(delivery_id=delivery.pk)
    assert Delivery.objects.get(pk=delivery.pk).status == DeliveryStatus.SUCCESS
    [(request, _)] = receiver.log
    headers, body = dict(request.headers), request.get_data()

    payload = snippets["receive"](hook.signing_secret, headers, body)
    assert parse(payload, request) == {"deal": "Café & <Co>", "amount": "12.50"}
    assert snippets["verify"](hook.signing_secret, {k.lower(): v for k, v in headers.items()}, body)

    tampered = body + b" " if body else b"x"
    with pytest.raises(WebhookVerificationError):
        snippets["receive"](hook.signing_secret, headers, tampered)
    assert not snippets["verify"](hook.signing_secret, {k.lower(): v for k, v in headers.items()}, tampered)


def test_the_python_receiver_accepts_either_secret_during_a_rotation(receiver, owner, modules):
    from dispatcher.senders import secret_rotation

    snippets = receiver_snippets()
    receiver.expect_request("/hook").respond_with_data("ok")
    hook = webhook_create(module=modules["Deals"], name="Rotating", url=receiver.url_for("/hook"),
                          entity=[("deal", "${Deals.Deal Name}")])
    old = hook.signing_secret
    secret_rotation.signing_secret_rotate(sender=hook)
    deal = crm_services.record_create(module=modules["Deals"], owner=owner, values={"Deal_Name": "Website"})
    delivery = delivery_engine.delivery_enqueue(webhook=hook, record=deal)
    delivery_engine.delivery_run(delivery_id=delivery.pk)
    [(request, _)] = receiver.log
    headers, body = dict(request.headers), request.get_data()
    for secrets in ([old], [hook.signing_secret], [hook.signing_secret, old], ["whsec_" + "A" * 32, old]):
        assert snippets["receive_any"](secrets, headers, body) == {"deal": "Website"}
        assert any(snippets["verify"](secret, {k.lower(): v for k, v in headers.items()}, body) for secret in secrets)
    with pytest.raises(WebhookVerificationError):
        snippets["receive_any"](["whsec_" + "A" * 32], headers, body)


@pytest.fixture
def signed(receiver, owner, modules):
    """A real delivery the product signed, as the receiver got it: (secret, headers, body)."""
    receiver.expect_request("/hook").respond_with_data("ok")
    hook = webhook_create(module=modules["Deals"], name="Signed", url=receiver.url_for("/hook"), content_type="XML",
                          entity=[("deal", "${Deals.Deal Name}")])
    deal = crm_services.record_create(module=modules["Deals"], owner=owner, values={"Deal_Name": "Café & <Co>"})
    delivery = delivery_engine.delivery_enqueue(webhook=hook, record=deal)
    delivery_engine.delivery_run(delivery_id=delivery.pk)
    [(request, _)] = receiver.log
    headers = {name.lower(): value for name, value in request.headers.items()}
    return hook.signing_secret, headers, request.get_data()


def test_the_node_receiver_verifies_a_real_delivery(signed, tmp_path):
    import json
    import shutil
    import subprocess

    node = shutil.which("node")
    assert node, "Node.js is needed to check the page's Node.js receiver"
    [block] = blocks(page(SIGNATURES), "javascript")
    (tmp_path / "verify.js").write_text(block)
    secret, headers, body = signed
    (tmp_path / "body.bin").write_bytes(body)
    script = ("const {verify} = require('./verify.js'); const fs = require('fs');"
              "const [secret, headers] = JSON.parse(process.argv[1]); const body = fs.readFileSync(process.argv[2]);"
              "const tampered = Buffer.concat([body, Buffer.from(' ')]);"
              "console.log(JSON.stringify([verify(secret, headers, body), verify(secret, headers, tampered),"
              " verify('whsec_' + Buffer.alloc(24).toString('base64'), headers, body)]));")
    done = subprocess.run([node, "-e", script, json.dumps([secret, headers]), str(tmp_path / "body.bin")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [True, False, False]


def test_the_openssl_receiver_verifies_a_real_delivery(signed, tmp_path):
    import os
    import subprocess

    [block] = blocks(page(SIGNATURES), "sh")
    secret, headers, body = signed
    (tmp_path / "body.bin").write_bytes(body)

    def run(secret_used: str, payload: bytes) -> subprocess.CompletedProcess:
        (tmp_path / "body.bin").write_bytes(payload)
        env = {**os.environ, "SECRET": secret_used, "ID": headers["webhook-id"],
               "TIMESTAMP": headers["webhook-timestamp"], "SIGNATURE": headers["webhook-signature"]}
        return subprocess.run(["bash", "-c", block], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=60)

    good = run(secret, body)
    assert (good.returncode, good.stdout.strip()) == (0, "valid"), good.stderr
    assert run(secret, body + b" ").returncode == 1
    assert run("whsec_" + "A" * 32, body).returncode == 1
