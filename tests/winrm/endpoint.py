#!/usr/bin/env python3
"""A small WinRM (WS-Management / MS-WSMV remote shell) endpoint for tests.

What it is
    One Python file that speaks enough of Microsoft's WinRM protocol over
    HTTP or HTTPS for a real WinRM client (pywinrm, and later warren's Rust
    client) to authenticate, open a cmd-style remote shell, run commands,
    read their output and exit code, and close the shell.  Commands run on
    *this* machine through ``/bin/sh -c``: there is no Windows here.

What it is for
    Testing WinRM clients without a Windows host.  It listens on loopback by
    default, prints ``listening on PORT`` once ready and exposes counters at
    ``GET /stats`` so a test can check that shells were closed, that
    unencrypted bodies were refused, and so on.

Usage
    NTLM_USER_FILE=users.txt python3 endpoint.py [--port 0] [--bind 127.0.0.1]
    python3 endpoint.py --user-file users.txt --https --cert C --key K

    The user file holds ``DOMAIN:USER:PASSWORD`` lines (pyspnego's
    NTLM_USER_FILE format; smbpasswd-style hash lines are passed through for
    NTLM only).  pyspnego matches the domain *exactly*, so for every line
    with a domain an extra ``:USER:PASSWORD`` line is added to a private copy
    of the file: a client may then log on as ``USER`` or ``DOMAIN\\USER``.

What of MS-WSMV it implements
    * Transport: HTTP/1.1 with keep-alive on POST /wsman; HTTPS with
      ``--https`` (stdlib ssl).  Content-Length or chunked request bodies.
    * Authentication: ``Authorization: Negotiate`` (raw NTLM tokens, as
      pywinrm/requests-ntlm send them, or SPNEGO-wrapped NTLM) and
      ``Authorization: NTLM``, accepted with pyspnego; the security context
      belongs to the TCP connection.  Handshake: 401 + ``WWW-Authenticate:
      Negotiate`` (plus ``Basic realm="WSMAN"`` over HTTPS) for a request
      without credentials, 401 + ``WWW-Authenticate: <scheme> <challenge>``
      for the negotiate leg, then the authenticate leg is processed together
      with its body (200, with ``WWW-Authenticate: Negotiate <final token>``
      when SPNEGO produced one).  A bad authenticate leg gives 401.
      Over HTTPS the NTLM channel binding (tls-server-end-point) is checked
      when the client sends one (``--cbt relaxed``, Windows' default
      hardening level), always (``strict``) or never (``none``).
      ``Authorization: Basic`` is accepted over HTTPS only.
    * Message encryption (MS-WSMV 2.2.9.1.1, "HTTP-SPNEGO-session-encrypted")
      exactly as pywinrm's winrm/encryption.py frames it; responses to an
      encrypted request are encrypted, faults included.  Over plain HTTP an
      unencrypted SOAP body after authentication is refused with HTTP 400
      (Windows with AllowUnencrypted=false; real Windows answers 401 or 500
      here depending on version) and counted.  Over HTTPS both are accepted.
    * Remote shell resource http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd:
      Create, Command, Send, Receive (long poll bounded by OperationTimeout,
      capped by --max-operation-timeout, then the w:TimedOut fault
      2150858793), Signal (terminate / ctrl_c / ctrl_break) and Delete.
      Shell WorkingDirectory and Environment variables are honoured.
      Receive honours w:MaxEnvelopeSize by splitting output over several
      responses.
    * Faults (HTTP 500, SOAP 1.2 with a WSManFault detail): unknown ShellId
      or CommandId -> w:InvalidSelectors (2150858843), unknown action ->
      a:ActionNotSupported (2150858771), other ResourceURI ->
      a:DestinationUnreachable (2150858770), unparsable envelope ->
      w:InvalidBody (2150858791), failure to start a process ->
      w:InternalError.

What it does not implement
    Kerberos and CredSSP (and CredSSP's multipart/x-multi-encrypted),
    client-certificate auth, PowerShell remoting (PSRP), WS-Transfer Get/Put,
    WS-Enumeration, Identify, disconnected shells
    (Disconnect/Reconnect/Connect), shell idle timeouts and quotas,
    SequenceId, codepages (bytes are passed through unchanged), and the
    exact wording of Windows' fault messages.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import http.server
import json
import os
import re
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape, quoteattr

import spnego
import spnego.channel_bindings
import spnego.exceptions

# --------------------------------------------------------------------------
# Protocol constants
# --------------------------------------------------------------------------

NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "a": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
    "w": "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd",
    "x": "http://schemas.xmlsoap.org/ws/2004/09/transfer",
    "rsp": "http://schemas.microsoft.com/wbem/wsman/1/windows/shell",
    "p": "http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd",
    "f": "http://schemas.microsoft.com/wbem/wsman/1/wsmanfault",
}

SHELL_URI = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell"
CMD_RESOURCE_URI = SHELL_URI + "/cmd"
ANONYMOUS = "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous"
TRANSFER = "http://schemas.xmlsoap.org/ws/2004/09/transfer"

ACTION_CREATE = TRANSFER + "/Create"
ACTION_DELETE = TRANSFER + "/Delete"
ACTION_COMMAND = SHELL_URI + "/Command"
ACTION_SEND = SHELL_URI + "/Send"
ACTION_RECEIVE = SHELL_URI + "/Receive"
ACTION_SIGNAL = SHELL_URI + "/Signal"
ACTION_FAULT = "http://schemas.dmtf.org/wbem/wsman/1/wsman/fault"

STATE_RUNNING = SHELL_URI + "/CommandState/Running"
STATE_DONE = SHELL_URI + "/CommandState/Done"
SIGNAL_TERMINATE = SHELL_URI + "/signal/terminate"
SIGNAL_CTRL_C = SHELL_URI + "/signal/ctrl_c"
SIGNAL_CTRL_BREAK = SHELL_URI + "/signal/ctrl_break"

# WSManFault codes (wsmerror.h)
ERR_DESTINATION_UNREACHABLE = 2150858770  # 0x80338012
ERR_ACTION_NOT_SUPPORTED = 2150858771  # 0x80338013
ERR_INVALID_SOAP_BODY = 2150858791  # 0x80338027
ERR_OPERATION_TIMEDOUT = 2150858793  # 0x80338029
ERR_SHELL_NOT_FOUND = 2150858843  # 0x8033805B, what Windows sends for a bad ShellId

# MS-WSMV 2.2.9.1.1 framing, byte for byte as pywinrm writes and reads it.
BOUNDARY = b"--Encrypted Boundary"
ENC_PROTOCOL = b"application/HTTP-SPNEGO-session-encrypted"
ENC_CONTENT_TYPE = 'multipart/encrypted;protocol="application/HTTP-SPNEGO-session-encrypted";boundary="Encrypted Boundary"'

DEFAULT_MAX_ENVELOPE = 153600
READ_CHUNK = 65536


class Fault(Exception):
    """A WS-Management SOAP fault, sent with HTTP 500."""

    def __init__(self, code: str, subcode: str, reason: str, wsman_code: int, detail: str | None = None):
        super().__init__(reason)
        self.code, self.subcode, self.reason = code, subcode, reason
        self.wsman_code, self.detail = wsman_code, detail


def shell_not_found(shell_id: str) -> Fault:
    return Fault(
        "s:Sender",
        "w:InvalidSelectors",
        "The WS-Management service cannot process the request because the request contained invalid selectors for the resource.",
        ERR_SHELL_NOT_FOUND,
        f"The request for the Windows Remote Shell with ShellId {shell_id} failed because the shell was not found on the server.",
    )


def command_not_found(shell_id: str, command_id: str) -> Fault:
    return Fault(
        "s:Sender",
        "w:InvalidSelectors",
        "The WS-Management service cannot process the request because the request contained invalid selectors for the resource.",
        ERR_SHELL_NOT_FOUND,
        f"The command with CommandId {command_id} was not found in the shell {shell_id}.",
    )


# --------------------------------------------------------------------------
# Bookkeeping
# --------------------------------------------------------------------------


class Stats:
    KEYS = (
        "open_shells",
        "shells_created",
        "shells_deleted",
        "commands",
        "unencrypted_refused",
        "auth_failures",
        "auth_successes",
        "encrypted_requests",
        "receive_timeouts",
        "faults",
        "cbt_verified",
        "decrypt_failures",
    )

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values = {k: 0 for k in self.KEYS}

    def add(self, key: str, n: int = 1) -> None:
        with self._lock:
            self._values[key] += n

    def snapshot(self) -> dict:
        with self._lock:
            return dict(self._values)


# --------------------------------------------------------------------------
# Shells and commands
# --------------------------------------------------------------------------


class Command:
    """One process started by the Command operation, and its buffered output."""

    def __init__(self, command_line: str, cwd: str | None, env: dict[str, str]):
        self.id = str(uuid.uuid4()).upper()
        self.cond = threading.Condition()
        self.buffers = {"stdout": bytearray(), "stderr": bytearray()}
        self.exit_code: int | None = None
        self.done = False  # process exited and its pipes were drained
        self.proc = subprocess.Popen(
            ["/bin/sh", "-c", command_line],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            env=env,
            start_new_session=True,  # own process group, so signals reach sh's children
        )
        self._readers = [
            threading.Thread(target=self._pump, args=(self.proc.stdout, "stdout"), daemon=True),
            threading.Thread(target=self._pump, args=(self.proc.stderr, "stderr"), daemon=True),
        ]
        for t in self._readers:
            t.start()
        threading.Thread(target=self._wait, daemon=True).start()

    def _pump(self, pipe, name: str) -> None:
        fd = pipe.fileno()
        while True:
            try:
                chunk = os.read(fd, READ_CHUNK)
            except OSError:
                chunk = b""
            if not chunk:
                break
            with self.cond:
                self.buffers[name] += chunk
                self.cond.notify_all()
        pipe.close()

    def _wait(self) -> None:
        code = self.proc.wait()
        for t in self._readers:
            t.join(timeout=2.0)  # a background grandchild may keep a pipe open
        with self.cond:
            self.exit_code = code if code >= 0 else 128 - code  # killed by signal N -> 128+N
            self.done = True
            self.cond.notify_all()

    def send_stdin(self, data: bytes, end: bool) -> None:
        stdin = self.proc.stdin
        if stdin is None or stdin.closed:
            return
        try:
            if data:
                stdin.write(data)
                stdin.flush()
            if end:
                stdin.close()
        except (BrokenPipeError, OSError):
            pass

    def take_output(self, timeout: float, budget: int) -> tuple[dict[str, bytes], bool, int | None] | None:
        """Wait up to `timeout` s for output or completion.

        Returns ({stream: bytes}, done, exit_code), or None on timeout.
        """
        deadline = time.monotonic() + timeout
        with self.cond:
            while not (self.done or any(self.buffers.values())):
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)
            out = {}
            for name in ("stdout", "stderr"):
                buf = self.buffers[name]
                n = min(len(buf), budget)
                out[name] = bytes(buf[:n])
                del buf[:n]
                budget -= n
            finished = self.done and not any(self.buffers.values())
            return out, finished, (self.exit_code if finished else None)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
        if sig == signal.SIGKILL and self.proc.stdin and not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()
            except OSError:
                pass


class Shell:
    def __init__(self, owner: str, client_ip: str, cwd: str | None, env: dict[str, str],
                 input_streams: str, output_streams: str):
        self.id = str(uuid.uuid4()).upper()
        self.owner, self.client_ip = owner, client_ip
        self.cwd, self.env = cwd, env
        self.input_streams, self.output_streams = input_streams, output_streams
        self.commands: dict[str, Command] = {}
        self.lock = threading.Lock()

    def command(self, command_id: str | None) -> Command:
        with self.lock:
            if command_id is None and len(self.commands) == 1:
                return next(iter(self.commands.values()))
            cmd = self.commands.get((command_id or "").upper())
        if cmd is None:
            raise command_not_found(self.id, command_id or "")
        return cmd

    def close(self) -> None:
        with self.lock:
            cmds = list(self.commands.values())
            self.commands.clear()
        for c in cmds:
            c.kill()


class Registry:
    def __init__(self, stats: Stats):
        self.stats = stats
        self.lock = threading.Lock()
        self.shells: dict[str, Shell] = {}

    def add(self, shell: Shell) -> None:
        with self.lock:
            self.shells[shell.id] = shell
            self.stats.add("shells_created")
            self.stats.add("open_shells")

    def get(self, shell_id: str | None) -> Shell:
        with self.lock:
            shell = self.shells.get((shell_id or "").upper())
        if shell is None:
            raise shell_not_found(shell_id or "")
        return shell

    def remove(self, shell_id: str | None) -> None:
        with self.lock:
            shell = self.shells.pop((shell_id or "").upper(), None)
            if shell is not None:
                self.stats.add("shells_deleted")
                self.stats.add("open_shells", -1)
        if shell is None:
            raise shell_not_found(shell_id or "")
        shell.close()

    def close_all(self) -> None:
        with self.lock:
            shells = list(self.shells.values())
            self.shells.clear()
        for s in shells:
            s.close()


# --------------------------------------------------------------------------
# SOAP helpers
# --------------------------------------------------------------------------


def q(prefix: str, tag: str) -> str:
    return "{%s}%s" % (NS[prefix], tag)


def parse_duration(text: str | None) -> float | None:
    """xs:duration as used in w:OperationTimeout (PT20S, PT20.000S, PT1M30S, P0DT0H0M5S)."""
    if not text:
        return None
    m = re.fullmatch(r"\s*P(?:(\d+(?:\.\d+)?)D)?(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?\s*", text)
    if not m:
        return None
    d, h, mi, s = (float(g) if g else 0.0 for g in m.groups())
    return d * 86400 + h * 3600 + mi * 60 + s


def envelope(action: str, relates_to: str | None, body: str) -> bytes:
    ns = " ".join(f'xmlns:{p}="{u}"' for p, u in NS.items() if p != "f")
    relates = f"<a:RelatesTo>{escape(relates_to)}</a:RelatesTo>" if relates_to else ""
    text = (
        f'<s:Envelope xml:lang="en-US" {ns}>'
        "<s:Header>"
        f"<a:Action>{escape(action)}</a:Action>"
        f"<a:MessageID>uuid:{str(uuid.uuid4()).upper()}</a:MessageID>"
        f"<a:To>{ANONYMOUS}</a:To>"
        f"{relates}"
        "</s:Header>"
        f"<s:Body>{body}</s:Body>"
        "</s:Envelope>"
    )
    return text.encode("utf-8")


def fault_envelope(fault: Fault, relates_to: str | None) -> bytes:
    message = fault.detail or fault.reason
    body = (
        "<s:Fault>"
        f"<s:Code><s:Value>{fault.code}</s:Value>"
        f"<s:Subcode><s:Value>{fault.subcode}</s:Value></s:Subcode></s:Code>"
        f'<s:Reason><s:Text xml:lang="en-US">{escape(fault.reason)}</s:Text></s:Reason>'
        "<s:Detail>"
        f'<f:WSManFault xmlns:f="{NS["f"]}" Code="{fault.wsman_code}" Machine={quoteattr(socket.gethostname())}>'
        f"<f:Message>{escape(message)}</f:Message>"
        "</f:WSManFault>"
        "</s:Detail>"
        "</s:Fault>"
    )
    return envelope(ACTION_FAULT, relates_to, body)


class Request:
    """The parts of a WS-Management request envelope this endpoint looks at."""

    def __init__(self, data: bytes):
        try:
            self.root = ET.fromstring(data)
        except ET.ParseError as e:
            raise Fault("s:Sender", "w:InvalidBody", f"The request is not well-formed XML: {e}", ERR_INVALID_SOAP_BODY)
        if self.root.tag != q("s", "Envelope"):
            raise Fault("s:Sender", "w:InvalidBody", "The request is not a SOAP 1.2 envelope.", ERR_INVALID_SOAP_BODY)
        header = self.root.find(q("s", "Header"))
        self.body = self.root.find(q("s", "Body"))
        if header is None or self.body is None:
            raise Fault("s:Sender", "w:InvalidBody", "The envelope lacks a Header or a Body.", ERR_INVALID_SOAP_BODY)

        def text(path: str) -> str | None:
            el = header.find(path, NS)
            return el.text.strip() if el is not None and el.text else None

        self.action = text("a:Action")
        self.message_id = text("a:MessageID")
        self.resource_uri = text("w:ResourceURI")
        self.operation_timeout = parse_duration(text("w:OperationTimeout"))
        try:
            self.max_envelope = int(text("w:MaxEnvelopeSize") or DEFAULT_MAX_ENVELOPE)
        except ValueError:
            self.max_envelope = DEFAULT_MAX_ENVELOPE
        self.selectors = {
            sel.get("Name"): (sel.text or "").strip() for sel in header.findall("w:SelectorSet/w:Selector", NS)
        }
        self.options = {
            opt.get("Name"): (opt.text or "").strip() for opt in header.findall("w:OptionSet/w:Option", NS)
        }


# --------------------------------------------------------------------------
# The shell service (transport-independent)
# --------------------------------------------------------------------------


class ShellService:
    def __init__(self, registry: Registry, stats: Stats, max_operation_timeout: float):
        self.registry = registry
        self.stats = stats
        self.max_operation_timeout = max_operation_timeout

    def handle(self, data: bytes, user: str, client_ip: str) -> tuple[int, bytes]:
        """Process one SOAP request; returns (HTTP status, response envelope)."""
        relates_to = None
        try:
            req = Request(data)
            relates_to = req.message_id
            if req.resource_uri != CMD_RESOURCE_URI:
                raise Fault(
                    "s:Sender",
                    "a:DestinationUnreachable",
                    f"The WS-Management service cannot process the request. The resource URI {req.resource_uri} "
                    "is not supported by this test endpoint.",
                    ERR_DESTINATION_UNREACHABLE,
                )
            op = {
                ACTION_CREATE: self.create,
                ACTION_DELETE: self.delete,
                ACTION_COMMAND: self.command,
                ACTION_SEND: self.send,
                ACTION_RECEIVE: self.receive,
                ACTION_SIGNAL: self.signal,
            }.get(req.action or "")
            if op is None:
                raise Fault(
                    "s:Sender",
                    "a:ActionNotSupported",
                    "The WS-Management service does not support the action specified in the request.",
                    ERR_ACTION_NOT_SUPPORTED,
                    f"The action {req.action} is not supported.",
                )
            action, body = op(req, user, client_ip)
            return 200, envelope(action, relates_to, body)
        except Fault as fault:
            self.stats.add("faults")
            return 500, fault_envelope(fault, relates_to)

    # -- operations ---------------------------------------------------------

    def create(self, req: Request, user: str, client_ip: str) -> tuple[str, str]:
        shell_el = req.body.find("rsp:Shell", NS)
        cwd = None
        env = dict(os.environ)
        input_streams, output_streams = "stdin", "stdout stderr"
        if shell_el is not None:
            wd = shell_el.findtext("rsp:WorkingDirectory", default=None, namespaces=NS)
            cwd = wd.strip() if wd and wd.strip() else None
            for var in shell_el.findall("rsp:Environment/rsp:Variable", NS):
                if var.get("Name"):
                    env[var.get("Name")] = var.text or ""
            input_streams = (shell_el.findtext("rsp:InputStreams", default="", namespaces=NS) or "stdin").strip()
            output_streams = (shell_el.findtext("rsp:OutputStreams", default="", namespaces=NS) or "stdout stderr").strip()
        shell = Shell(user, client_ip, cwd, env, input_streams, output_streams)
        self.registry.add(shell)
        body = (
            "<x:ResourceCreated>"
            "<a:Address>http://localhost/wsman</a:Address>"
            "<a:ReferenceParameters>"
            f"<w:ResourceURI>{CMD_RESOURCE_URI}</w:ResourceURI>"
            f'<w:SelectorSet><w:Selector Name="ShellId">{shell.id}</w:Selector></w:SelectorSet>'
            "</a:ReferenceParameters>"
            "</x:ResourceCreated>"
            "<rsp:Shell>"
            f"<rsp:ShellId>{shell.id}</rsp:ShellId>"
            f"<rsp:ResourceUri>{CMD_RESOURCE_URI}</rsp:ResourceUri>"
            f"<rsp:Owner>{escape(user)}</rsp:Owner>"
            f"<rsp:ClientIP>{escape(client_ip)}</rsp:ClientIP>"
            "<rsp:IdleTimeOut>PT7200.000S</rsp:IdleTimeOut>"
            f"<rsp:InputStreams>{escape(input_streams)}</rsp:InputStreams>"
            f"<rsp:OutputStreams>{escape(output_streams)}</rsp:OutputStreams>"
            "<rsp:ShellRunTime>P0DT0H0M0S</rsp:ShellRunTime>"
            "<rsp:ShellInactivity>P0DT0H0M0S</rsp:ShellInactivity>"
            "</rsp:Shell>"
        )
        return TRANSFER + "/CreateResponse", body

    def delete(self, req: Request, user: str, client_ip: str) -> tuple[str, str]:
        self.registry.remove(req.selectors.get("ShellId"))
        return TRANSFER + "/DeleteResponse", ""

    def command(self, req: Request, user: str, client_ip: str) -> tuple[str, str]:
        shell = self.registry.get(req.selectors.get("ShellId"))
        line = req.body.find("rsp:CommandLine", NS)
        if line is None:
            raise Fault("s:Sender", "w:InvalidBody", "The Command request has no rsp:CommandLine.", ERR_INVALID_SOAP_BODY)
        parts = [(line.findtext("rsp:Command", default="", namespaces=NS) or "").strip()]
        parts += [a.text or "" for a in line.findall("rsp:Arguments", NS)]
        command_line = " ".join(p for p in parts if p)
        try:
            cmd = Command(command_line, shell.cwd, shell.env)
        except OSError as e:
            raise Fault("s:Receiver", "w:InternalError", f"The process could not be started: {e}", e.errno or 1)
        with shell.lock:
            shell.commands[cmd.id] = cmd
        self.stats.add("commands")
        return SHELL_URI + "/CommandResponse", f"<rsp:CommandResponse><rsp:CommandId>{cmd.id}</rsp:CommandId></rsp:CommandResponse>"

    def send(self, req: Request, user: str, client_ip: str) -> tuple[str, str]:
        shell = self.registry.get(req.selectors.get("ShellId"))
        for stream in req.body.findall("rsp:Send/rsp:Stream", NS):
            if stream.get("Name", "stdin") != "stdin":
                continue
            cmd = shell.command(stream.get("CommandId"))
            try:
                data = base64.b64decode((stream.text or "").strip(), validate=True)
            except binascii.Error:
                raise Fault("s:Sender", "w:InvalidBody", "The stdin stream is not valid base64.", ERR_INVALID_SOAP_BODY)
            cmd.send_stdin(data, stream.get("End", "false").lower() == "true")
        return SHELL_URI + "/SendResponse", "<rsp:SendResponse/>"

    def receive(self, req: Request, user: str, client_ip: str) -> tuple[str, str]:
        shell = self.registry.get(req.selectors.get("ShellId"))
        desired = req.body.find("rsp:Receive/rsp:DesiredStream", NS)
        cmd = shell.command(desired.get("CommandId") if desired is not None else None)
        timeout = req.operation_timeout if req.operation_timeout is not None else 60.0
        timeout = min(timeout, self.max_operation_timeout)
        # raw bytes per response: base64 grows by 4/3; keep 4 KiB for the envelope itself.
        budget = max(1024, (req.max_envelope - 4096) * 3 // 4)
        got = cmd.take_output(timeout, budget)
        if got is None:
            self.stats.add("receive_timeouts")
            raise Fault(
                "s:Receiver",
                "w:TimedOut",
                "The WS-Management service cannot complete the operation within the time specified in OperationTimeout.  ",
                ERR_OPERATION_TIMEDOUT,
            )
        out, finished, exit_code = got
        cid = cmd.id
        parts = []
        for name in ("stdout", "stderr"):
            if out[name]:
                parts.append(f'<rsp:Stream Name="{name}" CommandId="{cid}">{base64.b64encode(out[name]).decode()}</rsp:Stream>')
        if finished:
            parts.append(f'<rsp:Stream Name="stdout" CommandId="{cid}" End="true"></rsp:Stream>')
            parts.append(f'<rsp:Stream Name="stderr" CommandId="{cid}" End="true"></rsp:Stream>')
            parts.append(
                f'<rsp:CommandState CommandId="{cid}" State="{STATE_DONE}">'
                f"<rsp:ExitCode>{exit_code}</rsp:ExitCode></rsp:CommandState>"
            )
        else:
            parts.append(f'<rsp:CommandState CommandId="{cid}" State="{STATE_RUNNING}"/>')
        return SHELL_URI + "/ReceiveResponse", "<rsp:ReceiveResponse>" + "".join(parts) + "</rsp:ReceiveResponse>"

    def signal(self, req: Request, user: str, client_ip: str) -> tuple[str, str]:
        shell = self.registry.get(req.selectors.get("ShellId"))
        sig_el = req.body.find("rsp:Signal", NS)
        if sig_el is None:
            raise Fault("s:Sender", "w:InvalidBody", "The Signal request has no rsp:Signal.", ERR_INVALID_SOAP_BODY)
        cmd = shell.command(sig_el.get("CommandId"))
        code = (sig_el.findtext("rsp:Code", default="", namespaces=NS) or "").strip()
        if code in (SIGNAL_CTRL_C, SIGNAL_CTRL_BREAK):
            cmd.kill(signal.SIGINT)
        else:  # terminate (and anything unknown): the command goes away, like TerminateProcess
            cmd.kill(signal.SIGKILL)
            with shell.lock:
                shell.commands.pop(cmd.id, None)
        return SHELL_URI + "/SignalResponse", "<rsp:SignalResponse/>"


# --------------------------------------------------------------------------
# Message encryption (MS-WSMV 2.2.9.1.1)
# --------------------------------------------------------------------------


class EncryptionError(Exception):
    pass


def decrypt_body(ctx, body: bytes) -> bytes:
    """Undo pywinrm's Encryption._encrypt_message with the acceptor context.

    Layout:
      --Encrypted Boundary\\r\\n
      \\tContent-Type: application/HTTP-SPNEGO-session-encrypted\\r\\n
      \\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length=N\\r\\n
      --Encrypted Boundary\\r\\n
      \\tContent-Type: application/octet-stream\\r\\n
      <u32 LE signature length><signature (16 for NTLM)><sealed N bytes>
      --Encrypted Boundary--\\r\\n
    """
    first = BOUNDARY + b"\r\n"
    if not body.startswith(first):
        raise EncryptionError("body does not start with the encryption boundary")
    second = body.find(first, len(first))
    if second < 0:
        raise EncryptionError("second MIME part missing")
    headers = body[len(first):second]
    m = re.search(rb"Length=(\d+)", headers)
    if not m or ENC_PROTOCOL.lower() not in headers.lower():
        raise EncryptionError("first MIME part lacks the protocol or OriginalContent Length")
    expected = int(m.group(1))
    marker = b"application/octet-stream\r\n"
    start = body.find(marker, second)
    if start < 0:
        raise EncryptionError("octet-stream part missing")
    payload = body[start + len(marker):]
    end = BOUNDARY + b"--\r\n"
    if payload.endswith(end):
        payload = payload[: -len(end)]
    elif payload.endswith(BOUNDARY + b"--"):
        payload = payload[: -len(BOUNDARY) - 2]
    else:
        raise EncryptionError("closing boundary missing")
    if len(payload) < 4:
        raise EncryptionError("payload too short")
    (sig_len,) = struct.unpack("<I", payload[:4])
    if len(payload) < 4 + sig_len:
        raise EncryptionError("signature length exceeds payload")
    signature, sealed = payload[4: 4 + sig_len], payload[4 + sig_len:]
    try:
        plain = ctx.unwrap_winrm(signature, sealed)
    except spnego.exceptions.SpnegoError as e:
        raise EncryptionError(f"unwrap failed: {e}")
    if len(plain) != expected:
        raise EncryptionError(f"decrypted length {len(plain)} != OriginalContent Length {expected}")
    return plain


def encrypt_body(ctx, plain: bytes) -> bytes:
    """pywinrm's Encryption._encrypt_message + closing boundary, server side."""
    wrapped = ctx.wrap_winrm(plain)
    stream = struct.pack("<I", len(wrapped.header)) + wrapped.header + wrapped.data
    return (
        BOUNDARY + b"\r\n"
        b"\tContent-Type: " + ENC_PROTOCOL + b"\r\n"
        b"\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length=" + str(len(plain)).encode() + b"\r\n"
        + BOUNDARY + b"\r\n"
        b"\tContent-Type: application/octet-stream\r\n" + stream + BOUNDARY + b"--\r\n"
    )


# --------------------------------------------------------------------------
# Users
# --------------------------------------------------------------------------


def load_users(path: str) -> tuple[list[tuple[str, str, str]], str]:
    """Read DOMAIN:USER:PASSWORD lines; write the expanded copy pyspnego will read.

    Returns (plain-password entries for Basic auth, path of the expanded file).
    """
    with open(path, encoding="utf-8") as fd:
        lines = [ln.rstrip("\r\n") for ln in fd if ln.strip() and not ln.lstrip().startswith("#")]
    entries, out = [], []
    have = set()
    for ln in lines:
        fields = ln.split(":")
        out.append(ln)
        if len(fields) == 3:
            entries.append((fields[0], fields[1], fields[2]))
            have.add((fields[0].upper(), fields[1].upper()))
    for dom, user, pw in list(entries):
        if dom and ("", user.upper()) not in have:
            out.append(f":{user}:{pw}")
            have.add(("", user.upper()))
    fd, expanded = tempfile.mkstemp(prefix="winrm-endpoint-users-", suffix=".txt")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write("\n".join(out) + "\n")
    return entries, expanded


def check_basic(entries, username: str, password: str) -> bool:
    domain = None
    if "\\" in username:
        domain, username = username.split("\\", 1)
    elif "@" in username:
        username, domain = username.split("@", 1)
    for dom, user, pw in entries:
        if user.upper() == username.upper() and pw == password and (domain is None or domain.upper() == dom.upper()):
            return True
    return False


def channel_bindings_for(cert_path: str):
    """RFC 5929 tls-server-end-point bindings for our certificate, as NTLM clients compute them."""
    with open(cert_path, encoding="ascii") as fd:
        pem = fd.read()
    der = ssl.PEM_cert_to_DER_cert(pem[pem.index("-----BEGIN CERTIFICATE-----"):])
    try:
        from cryptography import x509

        algo = x509.load_der_x509_certificate(der).signature_hash_algorithm
        name = algo.name if algo else "sha256"
    except Exception:  # cryptography missing or odd signature algorithm
        name = "sha256"
    if name in ("md5", "sha1"):
        name = "sha256"
    digest = hashlib.new(name, der).digest()
    return spnego.channel_bindings.GssChannelBindings(application_data=b"tls-server-end-point:" + digest)


# --------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: NTLM authenticates the connection
    server_version = "Microsoft-HTTPAPI/2.0"
    sys_version = ""

    def setup(self) -> None:
        super().setup()
        self.auth_ctx = None  # pyspnego acceptor for this TCP connection
        self.auth_scheme = None  # "Negotiate" or "NTLM" once started
        self.ntlm_user = None  # set when the connection has authenticated

    # -- plumbing -----------------------------------------------------------

    def log_message(self, fmt: str, *args) -> None:
        if self.server.verbose:
            sys.stderr.write("%s - %s\n" % (self.address_string(), fmt % args))

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _reply(self, status: int, body: bytes = b"", content_type: str | None = None,
               headers: list[tuple[str, str]] = ()) -> None:
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        if body and content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)
        self.wfile.flush()

    def _challenge_headers(self) -> list[tuple[str, str]]:
        h = [("WWW-Authenticate", "Negotiate")]
        if self.server.https:
            h.append(("WWW-Authenticate", 'Basic realm="WSMAN"'))
        return h

    def _unauthorized(self, count_failure: bool) -> None:
        if count_failure:
            self.server.stats.add("auth_failures")
        self._reply(401, headers=self._challenge_headers())

    # -- methods ------------------------------------------------------------

    def do_GET(self) -> None:
        if self.path.split("?")[0] == "/stats":
            body = json.dumps(self.server.stats.snapshot()).encode()
            self._reply(200, body, "application/json")
        else:
            self._reply(404)

    def do_PUT(self) -> None:
        self._read_body()
        self._reply(405, headers=[("Allow", "POST")])

    do_DELETE = do_PUT

    def do_POST(self) -> None:
        body = self._read_body()
        if self.path.split("?")[0].rstrip("/").lower() != "/wsman":
            self._reply(404)
            return

        user, final_token = self._authenticate()
        if user is None:
            return  # a 401 was sent
        extra = [("WWW-Authenticate", final_token)] if final_token else []

        if not body:
            # pywinrm sends an empty POST to set up the security context.
            self._reply(200, headers=extra)
            return

        content_type = (self.headers.get("Content-Type") or "").lower()
        encrypted = content_type.startswith("multipart/encrypted")
        if encrypted:
            if self.auth_ctx is None or not self.auth_ctx.complete:
                self._reply(400, headers=extra)  # Basic cannot encrypt
                return
            if "application/http-spnego-session-encrypted" not in content_type:
                self._reply(415, headers=extra)
                return
            try:
                soap = decrypt_body(self.auth_ctx, body)
            except EncryptionError as e:
                self.server.stats.add("decrypt_failures")
                self.log_message("decrypt failed: %s", e)
                self._reply(400, headers=extra)
                return
            self.server.stats.add("encrypted_requests")
        else:
            if not self.server.https:
                # AllowUnencrypted=false: plain SOAP over plain HTTP is refused.
                self.server.stats.add("unencrypted_refused")
                self._reply(400, b"unencrypted SOAP refused: use message encryption or HTTPS\n",
                            "text/plain", headers=extra)
                return
            soap = body

        status, response = self.server.service.handle(soap, user, self.client_address[0])
        if encrypted:
            self._reply(status, encrypt_body(self.auth_ctx, response), ENC_CONTENT_TYPE, extra)
        else:
            self._reply(status, response, "application/soap+xml;charset=UTF-8", extra)

    # -- authentication -------------------------------------------------------

    def _authenticate(self) -> tuple[str | None, str | None]:
        """Returns (user, final WWW-Authenticate value or None); user None means 401 was sent."""
        header = self.headers.get("Authorization")
        if not header:
            if self.ntlm_user is not None:
                return self.ntlm_user, None  # connection already authenticated
            self._unauthorized(count_failure=False)
            return None, None

        scheme, _, value = header.strip().partition(" ")
        scheme_l = scheme.lower()
        if scheme_l == "basic":
            return self._authenticate_basic(value.strip())
        if scheme_l not in ("negotiate", "ntlm"):
            self._unauthorized(count_failure=True)
            return None, None
        try:
            token = base64.b64decode(value.strip(), validate=True)
        except binascii.Error:
            token = b""
        if not token:
            self._unauthorized(count_failure=True)
            return None, None

        canonical = "Negotiate" if scheme_l == "negotiate" else "NTLM"
        self.log_message("Authorization: %s, %s token, %d bytes", canonical,
                         "raw NTLM" if token.startswith(b"NTLMSSP\x00") else "SPNEGO", len(token))
        if self.auth_ctx is None or self.auth_ctx.complete or self.auth_scheme != canonical:
            # A new handshake (also re-authentication of an authenticated connection).
            self.ntlm_user = None
            self.auth_scheme = canonical
            self.auth_ctx = spnego.server(hostname=socket.gethostname(), service="HTTP",
                                          protocol="negotiate" if canonical == "Negotiate" else "ntlm")
        try:
            out = self._step(token)
        except spnego.exceptions.SpnegoError as e:
            self.log_message("authentication failed: %s", e)
            self.auth_ctx = None
            self.auth_scheme = None
            self._unauthorized(count_failure=True)
            return None, None

        out_value = f"{canonical} {base64.b64encode(out).decode()}" if out else None
        if not self.auth_ctx.complete:
            self._reply(401, headers=[("WWW-Authenticate", out_value or canonical)])
            return None, None
        self.ntlm_user = self.auth_ctx.client_principal or "unknown"
        self.server.stats.add("auth_successes")
        return self.ntlm_user, out_value

    def _step(self, token: bytes):
        """One acceptor step; over HTTPS the channel binding is checked as --cbt says."""
        cbt = self.server.channel_bindings
        mode = self.server.cbt_mode
        if cbt is None or mode == "none" or not token_is_authenticate(token):
            return self.auth_ctx.step(token)
        try:
            out = self.auth_ctx.step(token, channel_bindings=cbt)
            self.server.stats.add("cbt_verified")
            return out
        except spnego.exceptions.BadBindingsError as e:
            if mode == "relaxed" and "not present" in str(e):
                return self.auth_ctx.step(token)  # client sent no binding: allowed when relaxed
            raise

    def _authenticate_basic(self, value: str) -> tuple[str | None, str | None]:
        if not self.server.https:
            self._unauthorized(count_failure=True)  # Basic is only allowed over HTTPS
            return None, None
        try:
            username, _, password = base64.b64decode(value, validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            username, password = "", None
        if password is None or not check_basic(self.server.basic_users, username, password):
            self._unauthorized(count_failure=True)
            return None, None
        self.server.stats.add("auth_successes")
        return username, None


def token_is_authenticate(token: bytes) -> bool:
    """True for the NTLM AUTHENTICATE leg (raw, or inside a SPNEGO NegTokenResp)."""
    if token.startswith(b"NTLMSSP\x00"):
        return token[8:12] == b"\x03\x00\x00\x00"
    return b"NTLMSSP\x00\x03\x00\x00\x00" in token


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def finish_request(self, request, client_address) -> None:
        # TLS handshake in the connection's own thread, not in the accept loop.
        if isinstance(request, ssl.SSLSocket):
            try:
                request.settimeout(30)
                request.do_handshake()
                request.settimeout(None)
            except (ssl.SSLError, OSError):
                return
        super().finish_request(request, client_address)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="WinRM (MS-WSMV remote shell) test endpoint")
    ap.add_argument("--port", type=int, default=5985, help="TCP port, 0 picks a free one (default 5985)")
    ap.add_argument("--bind", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    ap.add_argument("--user-file", default=os.environ.get("NTLM_USER_FILE"),
                    help="DOMAIN:USER:PASSWORD lines (default: $NTLM_USER_FILE)")
    ap.add_argument("--https", action="store_true", help="serve HTTPS (needs --cert and --key)")
    ap.add_argument("--cert", help="PEM certificate (chain) for --https")
    ap.add_argument("--key", help="PEM private key for --https")
    ap.add_argument("--cbt", choices=("relaxed", "strict", "none"), default="relaxed",
                    help="NTLM channel-binding check over HTTPS (default relaxed: checked when sent)")
    ap.add_argument("--max-operation-timeout", type=float, default=5.0,
                    help="cap in seconds for a Receive long poll before w:TimedOut (default 5)")
    ap.add_argument("--verbose", action="store_true", help="log requests to stderr")
    args = ap.parse_args(argv)

    if not args.user_file or not os.path.isfile(args.user_file):
        ap.error("a user file is required: --user-file or NTLM_USER_FILE")
    if args.https and not (args.cert and args.key):
        ap.error("--https needs --cert and --key")

    basic_users, expanded = load_users(args.user_file)
    os.environ["NTLM_USER_FILE"] = expanded  # pyspnego's NTLM acceptor reads it at each logon

    stats = Stats()
    registry = Registry(stats)
    server = Server((args.bind, args.port), Handler)
    server.verbose = args.verbose
    server.stats = stats
    server.service = ShellService(registry, stats, args.max_operation_timeout)
    server.basic_users = basic_users
    server.https = args.https
    server.cbt_mode = args.cbt
    server.channel_bindings = None
    if args.https:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.cert, args.key)
        server.socket = ctx.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
        server.channel_bindings = channel_bindings_for(args.cert)

    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    print(f"listening on {server.server_address[1]}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        registry.close_all()
        try:
            os.unlink(expanded)
        except OSError:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
