#!/usr/bin/env bash
# Installs what `make demo` and `make test` need on a Debian/Ubuntu machine, and only
# what is missing: RabbitMQ and OpenSSH (the lab's hosts run the real ones), iproute2,
# util-linux and iptables (namespaces, veth, unshare, setpriv, a host cut off in a
# test), sudo (a lab host reached as a user that is not root), systemd-container
# (systemd-nspawn, for the lab's systemd host), the C toolchain and headers the ssh2 crate builds libssh2 with, Python's
# venv and openssl for the WinRM tests, and Rust (rustup) when cargo is missing.
# Uses sudo when not root.
set -euo pipefail

need=()
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]; }
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "ok installed"; }
have rabbitmq-server || need+=(rabbitmq-server)
have sshd || need+=(openssh-server)
have ssh || need+=(openssh-client)
have ip || need+=(iproute2)
have unshare || need+=(util-linux)
have setpriv || need+=(util-linux)
have iptables || need+=(iptables)
# The terminal display is checked in a real terminal (a tmux pane).
have tmux || need+=(tmux)
# A lab host reached as a login user that is not root goes through sudo.
have sudo || need+=(sudo)
# `lab up --systemd` boots systemd in systemd-nspawn for its central host.
have systemd-nspawn || need+=(systemd-container)
[ -x /lib/systemd/systemd ] || need+=(systemd)
have erl || need+=(erlang-base)
have cc || need+=(gcc libc6-dev)
have pkg-config || need+=(pkg-config)
installed libssl-dev || need+=(libssl-dev)
# The WinRM tests: a WS-Management endpoint in Python (pyspnego, pywinrm in a venv)
# and a test CA made with openssl.
have openssl || need+=(openssl)
# The load balancer warren runs (and the lab's balancer story), and the AMQP client
# that story's publishers use.
have haproxy || need+=(haproxy)
have python3 || need+=(python3)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
installed zlib1g-dev || need+=(zlib1g-dev)
if ! command -v cargo >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/cargo" ]; then
    have curl || need+=(curl ca-certificates)
fi

if [ ${#need[@]} -gt 0 ]; then
    sudo=""
    if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
    echo "setup: installing ${need[*]} with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    # Do not let the packages start system-wide services: the lab starts its own
    # RabbitMQ and sshd inside each host's namespaces.
    policy=/usr/sbin/policy-rc.d
    made_policy=""
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
        $sudo chmod +x "$policy"
        made_policy=1
    fi
    $sudo apt-get update -q
    $sudo apt-get install -y -q --no-install-recommends $(printf '%s\n' "${need[@]}" | sort -u)
    if [ -n "$made_policy" ]; then $sudo rm -f "$policy"; fi
else
    echo "setup: rabbitmq-server, openssh, iproute2, util-linux, iptables, systemd-container and the C build tools are installed"
fi

if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v cargo >/dev/null 2>&1; then
    # Debian's own rustc is too old for warren's dependencies: rustup, as rust-lang.org
    # documents it, into ~/.cargo (the Makefile looks there).
    echo "setup: installing Rust (stable, with rustfmt and clippy) with rustup into ~/.cargo"
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs \
        | sh -s -- -y --profile minimal --component rustfmt --component clippy
    export PATH="$HOME/.cargo/bin:$PATH"
fi
# The tests' Python packages (the WinRM tests', and pika for an AMQP consumer in the
# lab), pinned, in a venv of their own under target/ (never the system's Python:
# Debian refuses pip there).
venv=target/winrm-venv
if ! "$venv/bin/python3" -c 'import winrm, spnego, cryptography, pika' >/dev/null 2>&1; then
    echo "setup: installing tests/winrm/requirements.txt into $venv"
    python3 -m venv "$venv"
    "$venv/bin/python3" -m pip install -q --disable-pip-version-check -r tests/winrm/requirements.txt
fi

for component in fmt clippy; do
    if ! cargo "$component" --version >/dev/null 2>&1; then
        echo "setup: cargo $component is missing; run 'rustup component add $( [ $component = fmt ] && echo rustfmt || echo clippy )', then rerun" >&2
        exit 1
    fi
done
