"""An SMTP server for tests/mail.rs, built on aiosmtpd (nobody here wrote
its SMTP): plain, STARTTLS (required) or implicit TLS, optionally with AUTH,
optionally slow in DATA. Each mail goes into a Maildir; each DATA is logged
as a line `data <Message-ID> tls=<bool> auth=<bool>` when it begins.

    smtp_server.py --port P --maildir DIR --log FILE [--tls starttls|implicit
        --cert PEM --key PEM] [--auth USER:PASSWORD] [--data-delay SECONDS]
"""

import argparse
import asyncio
import email
import mailbox
import ssl
import sys
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Handler:
    def __init__(self, maildir, log, delay):
        self.maildir = mailbox.Maildir(maildir, create=True)
        self.log = log
        self.delay = delay

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.original_content)
        # STARTTLS sets session.ssl; implicit TLS shows on the transport.
        tls = session.ssl is not None or (
            server.transport.get_extra_info("ssl_object") is not None
        )
        with open(self.log, "a") as log:
            log.write(
                f"data {message['Message-ID']} tls={tls} "
                f"auth={bool(session.authenticated)}\n"
            )
        if self.delay:
            await asyncio.sleep(self.delay)
        self.maildir.add(envelope.original_content)
        return "250 OK"


def authenticator(expected):
    def check(server, session, envelope, mechanism, auth_data):
        if isinstance(auth_data, LoginPassword) and (
            auth_data.login.decode(), auth_data.password.decode()
        ) == expected:
            return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    return check


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--maildir", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--tls", choices=["starttls", "implicit"])
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--auth")
    parser.add_argument("--data-delay", type=float, default=0.0)
    args = parser.parse_args()

    options = {}
    if args.tls:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.cert, args.key)
        if args.tls == "starttls":
            options.update(tls_context=context, require_starttls=True)
        else:
            options.update(ssl_context=context)
    if args.auth:
        user, password = args.auth.split(":", 1)
        # AUTH is offered even without TLS: refusing to log in over plain
        # SMTP is the client's job, and what the tests check.
        options.update(
            authenticator=authenticator((user, password)),
            auth_required=True,
            auth_require_tls=False,
        )
    controller = Controller(
        Handler(args.maildir, args.log, args.data_delay),
        hostname="127.0.0.1",
        port=args.port,
        **options,
    )
    controller.start()
    print("ready", flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        controller.stop()


if __name__ == "__main__":
    sys.exit(main())
