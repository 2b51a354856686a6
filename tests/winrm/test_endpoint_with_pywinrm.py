#!/usr/bin/env python3
"""Checks tests/winrm/endpoint.py against a real WinRM client (pywinrm).

Plain script, no pytest: prints one line per check, "all checks passed" at
the end, and exits non-zero on the first failure.  Needs the packages in
tests/winrm/requirements.txt and the openssl command line.

It makes a throwaway CA and a server certificate for 127.0.0.1/localhost,
writes a user file, starts the endpoint twice (HTTP and HTTPS) on free
ports, and drives both with pywinrm (NTLM with message encryption, NTLM and
Basic over HTTPS) and with a hand-rolled pyspnego client for what pywinrm
does not do (SPNEGO-wrapped tokens, an unencrypted body after NTLM).
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import queue
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import types
import uuid

import spnego
import spnego.channel_bindings
import winrm
import xmltodict
from requests_ntlm.requests_ntlm import ShimSessionSecurity
from winrm.encryption import Encryption
from winrm.exceptions import InvalidCredentialsError, WSManFaultError

HERE = os.path.dirname(os.path.abspath(__file__))
ENDPOINT = os.path.join(HERE, "endpoint.py")
USER, PASSWORD, DOMAIN = "user", "pass", "WORKGROUP"
CMD_URI = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd"

checks = 0


def check(name: str, cond: bool, detail: str = "") -> None:
    global checks
    if not cond:
        print(f"FAIL {name} {detail}", flush=True)
        raise SystemExit(1)
    checks += 1
    print(f"ok   {name}", flush=True)


# ---------------------------------------------------------------- fixtures


def make_certs(d: str) -> tuple[str, str, str]:
    """Throwaway CA + server certificate for 127.0.0.1 and localhost, with the openssl CLI."""
    ca_key, ca_pem = os.path.join(d, "ca.key"), os.path.join(d, "ca.pem")
    key, csr, pem = os.path.join(d, "server.key"), os.path.join(d, "server.csr"), os.path.join(d, "server.pem")
    ext = os.path.join(d, "server.ext")
    with open(ext, "w") as f:
        f.write(
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
            "basicConstraints=critical,CA:FALSE\n"
            "keyUsage=critical,digitalSignature,keyEncipherment\n"
            "extendedKeyUsage=serverAuth\n"
            "subjectKeyIdentifier=hash\n"
            "authorityKeyIdentifier=keyid\n"
        )
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run = lambda *a: subprocess.run(["openssl", *a], check=True, capture_output=True)  # noqa: E731
    run("req", "-x509", *ec, "-keyout", ca_key, "-out", ca_pem, "-days", "2", "-subj", "/CN=warren winrm test CA",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("req", *ec, "-keyout", key, "-out", csr, "-subj", "/CN=localhost")
    run("x509", "-req", "-in", csr, "-CA", ca_pem, "-CAkey", ca_key, "-set_serial", "0x" + uuid.uuid4().hex[:16],
        "-out", pem, "-days", "2", "-sha256", "-extfile", ext)
    return ca_pem, pem, key


class Endpoint:
    def __init__(self, user_file: str, *extra: str):
        self.proc = subprocess.Popen(
            [sys.executable, ENDPOINT, "--port", "0", "--user-file", user_file, "--max-operation-timeout", "1", *extra],
            stdout=subprocess.PIPE, text=True,
        )
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: lines.put(self.proc.stdout.readline()), daemon=True).start()
        try:
            line = lines.get(timeout=15)
        except queue.Empty:
            line = ""
        if not line.startswith("listening on "):
            self.stop()
            raise SystemExit(f"FAIL endpoint did not start (got {line!r})")
        self.port = int(line.split()[-1])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def get_stats(port: int, https_ctx: ssl.SSLContext | None = None) -> dict:
    if https_ctx:
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=https_ctx)
    else:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/stats")
    resp = conn.getresponse()
    data = json.loads(resp.read())
    conn.close()
    return data


def soap(action: str, body: dict | None = None, shell_id: str | None = None) -> str:
    p = winrm.protocol.Protocol("http://127.0.0.1/wsman", username="u", password="p", transport="ntlm")
    env = {"env:Envelope": p.build_wsman_header(action=action, resource_uri=CMD_URI, shell_id=shell_id)}
    env["env:Envelope"]["env:Body"] = body or {}
    return xmltodict.unparse(env)


# ------------------------------------------------- hand-rolled NTLM client


class RawClient:
    """One keep-alive connection authenticated with pyspnego; frames with pywinrm's own Encryption."""

    def __init__(self, port: int, scheme: str, protocol: str, user: str = USER, password: str = PASSWORD,
                 tls: ssl.SSLContext | None = None, cbt: bytes | None = None):
        opts = spnego.NegotiateOptions.use_negotiate if protocol == "negotiate" else spnego.NegotiateOptions.use_ntlm
        bindings = spnego.channel_bindings.GssChannelBindings(application_data=cbt) if cbt else None
        self.ctx = spnego.client(user, password, hostname="127.0.0.1", service="HTTP", protocol=protocol, options=opts,
                                 channel_bindings=bindings)
        if tls:
            self.conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=tls)
        else:
            self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.scheme = scheme
        fake = types.SimpleNamespace(auth=types.SimpleNamespace(session_security=ShimSessionSecurity(self.ctx)))
        self.enc = Encryption(fake, "ntlm")
        self.legs: list[tuple[int, list[str]]] = []

    def post(self, body: bytes = b"", headers: dict | None = None) -> http.client.HTTPResponse:
        h = {"Content-Length": str(len(body)), "Content-Type": "application/soap+xml;charset=UTF-8"}
        h.update(headers or {})
        self.conn.request("POST", "/wsman", body=body, headers=h)
        resp = self.conn.getresponse()
        resp.data = resp.read()
        return resp

    def authenticate(self) -> http.client.HTTPResponse:
        token = self.ctx.step()
        while True:
            resp = self.post(headers={"Authorization": f"{self.scheme} {base64.b64encode(token).decode()}"})
            values = resp.headers.get_all("WWW-Authenticate") or []
            self.legs.append((resp.status, values))
            mine = [v for v in values if v.startswith(self.scheme + " ")]
            if resp.status != 401 or not mine:
                if mine and not self.ctx.complete:
                    self.ctx.step(base64.b64decode(mine[0].split(" ", 1)[1]))  # final SPNEGO token (mechListMIC)
                return resp
            token = self.ctx.step(base64.b64decode(mine[0].split(" ", 1)[1]))

    def call_encrypted(self, message: str) -> tuple[int, bytes]:
        raw = message.encode()
        body = self.enc._encrypt_message(raw, "127.0.0.1") + Encryption.MIME_BOUNDARY + b"--\r\n"
        ctype = 'multipart/encrypted;protocol="application/HTTP-SPNEGO-session-encrypted";boundary="Encrypted Boundary"'
        resp = self.post(body, {"Content-Type": ctype})
        if "HTTP-SPNEGO-session-encrypted" not in (resp.headers.get("Content-Type") or ""):
            return resp.status, resp.data
        fake_resp = types.SimpleNamespace(content=resp.data)
        return resp.status, self.enc._decrypt_response(fake_resp, "127.0.0.1")


# ------------------------------------------------------------------ checks


def pywinrm_checks(http_ep: Endpoint) -> None:
    url = f"http://127.0.0.1:{http_ep.port}/wsman"
    s = winrm.Session(url, auth=(USER, PASSWORD), transport="ntlm", message_encryption="always")

    r = s.run_cmd("echo", ["hello"])
    check("http ntlm+encryption: echo hello", r.std_out == b"hello\n" and r.status_code == 0, repr(r))
    check("shell deleted after run_cmd", get_stats(http_ep.port)["open_shells"] == 0)

    r = s.run_cmd("echo oops >&2; exit 3")
    check("stderr and exit code 3", r.std_err == b"oops\n" and r.std_out == b"" and r.status_code == 3, repr(r))
    check("shell deleted after run_cmd (exit 3)", get_stats(http_ep.port)["open_shells"] == 0)

    expected = "".join(f"{i}\n" for i in range(1, 166001)).encode()
    before = get_stats(http_ep.port)
    r = s.run_cmd("seq", ["1", "166000"])
    check(f"~1 MB of stdout ({len(expected)} bytes) arrives whole and in order",
          r.std_out == expected and r.status_code == 0, f"got {len(r.std_out)} bytes")
    after = get_stats(http_ep.port)
    check("large output took several Receive round trips",
          after["encrypted_requests"] - before["encrypted_requests"] > 8, f"{before} -> {after}")
    check("shell deleted after run_cmd (1 MB)", after["open_shells"] == 0)

    r = s.run_cmd("sleep 1.5; echo late")
    st = get_stats(http_ep.port)
    check("w:TimedOut fault is retried by pywinrm", r.std_out == b"late\n" and st["receive_timeouts"] >= 1, f"{r!r} {st}")

    p = s.protocol
    shell_id = p.open_shell(env_vars={"WARREN_TEST_VAR": "from-shell"})
    cid = p.run_command(shell_id, "cat; echo \"$WARREN_TEST_VAR\"")
    p.send_command_input(shell_id, cid, b"line one\n")
    p.send_command_input(shell_id, cid, b"line two\n", end=True)
    out, err, code = p.get_command_output(shell_id, cid)
    check("Send stdin (End=true closes it) and shell Environment", out == b"line one\nline two\nfrom-shell\n" and code == 0,
          repr((out, err, code)))
    p.cleanup_command(shell_id, cid)

    cid = p.run_command(shell_id, "sleep", ["30"])
    t0 = time.monotonic()
    p.cleanup_command(shell_id, cid)  # Signal terminate on a running process
    try:
        p.get_command_output_raw(shell_id, cid)
        gone = False
    except WSManFaultError as e:
        gone = e.wsman_fault_code == 2150858843
    check("Signal terminate ends a running command", gone and time.monotonic() - t0 < 5)

    try:
        p.run_command("00000000-0000-0000-0000-000000000000", "echo")
        check("unknown ShellId gives a fault", False)
    except WSManFaultError as e:
        check("unknown ShellId -> encrypted w:InvalidSelectors fault 2150858843, HTTP 500",
              e.code == 500 and e.fault_subcode == "w:InvalidSelectors" and e.wsman_fault_code == 2150858843, repr(e))

    try:
        p.send_message(soap("http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Bogus", shell_id=shell_id))
        check("unknown action gives a fault", False)
    except WSManFaultError as e:
        check("unknown action -> a:ActionNotSupported fault 2150858771",
              e.code == 500 and e.fault_subcode == "a:ActionNotSupported" and e.wsman_fault_code == 2150858771, repr(e))

    p.close_shell(shell_id)
    check("explicit Delete leaves no shell", get_stats(http_ep.port)["open_shells"] == 0)

    # A fresh Session as DOMAIN\user (the domain form of the same account).
    r = winrm.Session(url, auth=(f"{DOMAIN}\\{USER}", PASSWORD), transport="ntlm",
                      message_encryption="always").run_cmd("echo", ["dom"])
    check("DOMAIN\\user logon works too", r.std_out == b"dom\n")

    failures = get_stats(http_ep.port)["auth_failures"]
    try:
        winrm.Session(url, auth=(USER, "wrong"), transport="ntlm", message_encryption="always").run_cmd("echo", ["x"])
        check("wrong password is rejected", False)
    except InvalidCredentialsError:
        check("wrong password -> InvalidCredentialsError (401)",
              get_stats(http_ep.port)["auth_failures"] == failures + 1)

    try:
        winrm.Session(url, auth=(USER, PASSWORD), transport="basic").run_cmd("echo", ["x"])
        check("Basic over plain HTTP is rejected", False)
    except InvalidCredentialsError:
        check("Basic over plain HTTP -> 401", True)


def raw_checks(http_ep: Endpoint) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", http_ep.port, timeout=10)
    body = soap("http://schemas.xmlsoap.org/ws/2004/09/transfer/Create").encode()
    conn.request("POST", "/wsman", body=body, headers={"Content-Type": "application/soap+xml;charset=UTF-8"})
    resp = conn.getresponse()
    resp.read()
    check("unauthenticated POST -> 401 + WWW-Authenticate: Negotiate",
          resp.status == 401 and resp.headers.get_all("WWW-Authenticate") == ["Negotiate"],
          f"{resp.status} {resp.headers.get_all('WWW-Authenticate')}")
    conn.close()

    # Raw NTLM inside "Negotiate", as pywinrm does; then plain SOAP on the authenticated connection.
    c = RawClient(http_ep.port, "Negotiate", "ntlm")
    resp = c.authenticate()
    check("NTLM handshake: 401+challenge, then 200 on the same connection",
          [s for s, _ in c.legs] == [401, 200] and c.ctx.complete, repr(c.legs))
    refused = get_stats(http_ep.port)["unencrypted_refused"]
    resp = c.post(body)
    check("plain HTTP: unencrypted SOAP after NTLM auth -> 400 and counted",
          resp.status == 400 and get_stats(http_ep.port)["unencrypted_refused"] == refused + 1, str(resp.status))
    status, data = c.call_encrypted(soap("http://schemas.xmlsoap.org/ws/2004/09/transfer/Create",
                                         {"rsp:Shell": {"rsp:InputStreams": "stdin", "rsp:OutputStreams": "stdout stderr"}}))
    check("same connection still works encrypted after the refusal", status == 200 and b"ShellId" in data, str(status))
    shell_id = xmltodict.parse(data)["s:Envelope"]["s:Body"]["rsp:Shell"]["rsp:ShellId"]
    status, data = c.call_encrypted(soap("http://schemas.xmlsoap.org/ws/2004/09/transfer/Delete", shell_id=shell_id))
    check("Delete -> DeleteResponse", status == 200 and b"transfer/DeleteResponse" in data, str(status))
    c.conn.close()

    # SPNEGO-wrapped NTLM (what a GSSAPI/SSPI-style client sends) and the bare "NTLM" scheme.
    for scheme, protocol in (("Negotiate", "negotiate"), ("NTLM", "ntlm")):
        c = RawClient(http_ep.port, scheme, protocol)
        c.authenticate()
        status, data = c.call_encrypted(soap("http://schemas.xmlsoap.org/ws/2004/09/transfer/Create"))
        ok = status == 200 and b"ShellId" in data
        if ok:
            shell_id = xmltodict.parse(data)["s:Envelope"]["s:Body"]["rsp:Shell"]["rsp:ShellId"]
            status, data = c.call_encrypted(soap("http://schemas.xmlsoap.org/ws/2004/09/transfer/Delete", shell_id=shell_id))
            ok = status == 200
        check(f"{scheme} scheme with {'SPNEGO-wrapped' if protocol == 'negotiate' else 'raw'} NTLM + encryption",
              ok and c.ctx.complete, f"{c.legs} {status}")
        c.conn.close()


def https_checks(https_ep: Endpoint, ca_pem: str) -> None:
    url = f"https://127.0.0.1:{https_ep.port}/wsman"
    ctx = ssl.create_default_context(cafile=ca_pem)
    common = dict(server_cert_validation="validate", ca_trust_path=ca_pem)

    r = winrm.Session(url, auth=(USER, PASSWORD), transport="ntlm", **common).run_cmd("echo", ["over-tls"])
    st = get_stats(https_ep.port, ctx)
    check("https ntlm (unencrypted body inside TLS), CA validated", r.std_out == b"over-tls\n" and r.status_code == 0, repr(r))
    check("https: NTLM channel binding (CBT) was sent and verified", st["cbt_verified"] >= 1, repr(st))

    failures = st["auth_failures"]
    c = RawClient(https_ep.port, "Negotiate", "ntlm", tls=ctx, cbt=b"tls-server-end-point:" + b"\x00" * 32)
    resp = c.authenticate()
    c.conn.close()
    check("https: a wrong channel binding -> 401",
          resp.status == 401 and get_stats(https_ep.port, ctx)["auth_failures"] == failures + 1, repr(c.legs))

    r = winrm.Session(url, auth=(USER, PASSWORD), transport="ntlm", send_cbt=False, **common).run_cmd("echo", ["nocbt"])
    check("https: a client sending no channel binding is accepted (--cbt relaxed)", r.std_out == b"nocbt\n", repr(r))

    r = winrm.Session(url, auth=(USER, PASSWORD), transport="ntlm", message_encryption="always", **common).run_cmd(
        "echo", ["both"])
    check("https ntlm with message encryption as well", r.std_out == b"both\n", repr(r))

    r = winrm.Session(url, auth=(USER, PASSWORD), transport="basic", **common).run_cmd("echo", ["basic"])
    check("https Basic auth", r.std_out == b"basic\n" and r.status_code == 0, repr(r))

    try:
        winrm.Session(url, auth=(USER, "wrong"), transport="basic", **common).run_cmd("echo", ["x"])
        check("https Basic with a wrong password is rejected", False)
    except InvalidCredentialsError:
        check("https Basic wrong password -> 401", True)

    try:
        winrm.Session(url, auth=(USER, PASSWORD), transport="ntlm", server_cert_validation="validate",
                      ca_trust_path=None).run_cmd("echo", ["x"])
        check("https without the test CA fails validation", False)
    except Exception as e:  # requests' SSLError
        check("https without the test CA fails certificate validation", "CERTIFICATE_VERIFY_FAILED" in str(e), repr(e))

    check("https: no shell left open", get_stats(https_ep.port, ctx)["open_shells"] == 0)


def main() -> int:
    t0 = time.monotonic()
    endpoints: list[Endpoint] = []
    with tempfile.TemporaryDirectory(prefix="warren-winrm-") as d:
        try:
            ca_pem, cert, key = make_certs(d)
            user_file = os.path.join(d, "users.txt")
            with open(user_file, "w") as f:
                f.write(f"{DOMAIN}:{USER}:{PASSWORD}\n")
            http_ep = Endpoint(user_file)
            endpoints.append(http_ep)
            https_ep = Endpoint(user_file, "--https", "--cert", cert, "--key", key)
            endpoints.append(https_ep)
            print(f"endpoints: http {http_ep.port}, https {https_ep.port}", flush=True)

            raw_checks(http_ep)
            pywinrm_checks(http_ep)
            https_checks(https_ep, ca_pem)
            st = get_stats(http_ep.port)
            check("http: every shell created was deleted",
                  st["open_shells"] == 0 and st["shells_created"] == st["shells_deleted"], repr(st))
        finally:
            for ep in endpoints:
                ep.stop()
    print(f"{checks} passed, 0 failed")
    print(f"all checks passed in {time.monotonic() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
