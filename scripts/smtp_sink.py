"""A real SMTP server (aiosmtpd) for the notification service's tests.

    smtp_sink.py PORT DIR [--fail-first N] [--fail-code CODE]

Listens on 127.0.0.1:PORT and stores every accepted message as DIR/<n>.eml (written to a
temporary name, then renamed, so a reader never sees half a message). Prints "ready" on stdout
once it accepts connections. --fail-first N answers the first N messages with CODE (default 451,
a temporary failure) instead of accepting them: faults a well-behaved server produces, for the
retry tests.
"""

import argparse
import asyncio
import itertools
import os
import signal
import sys

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, directory, fail_first, fail_code):
        self.directory = directory
        self.fail_left = fail_first
        self.fail_code = fail_code
        self.counter = itertools.count(len(os.listdir(directory)))

    async def handle_DATA(self, server, session, envelope):
        if self.fail_left > 0:
            self.fail_left -= 1
            return f"{self.fail_code} try again later"
        n = next(self.counter)
        final = os.path.join(self.directory, f"{n:08}.eml")
        temp = final + ".tmp"
        with open(temp, "wb") as f:
            f.write(envelope.original_content or envelope.content)
            f.flush()
            os.fsync(f.fileno())
        os.rename(temp, final)
        return "250 OK"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("directory")
    parser.add_argument("--fail-first", type=int, default=0)
    parser.add_argument("--fail-code", type=int, default=451)
    args = parser.parse_args()
    os.makedirs(args.directory, exist_ok=True)
    handler = Sink(args.directory, args.fail_first, args.fail_code)
    controller = Controller(handler, hostname="127.0.0.1", port=args.port, data_size_limit=10 * 1024 * 1024)
    controller.start()
    print("ready", flush=True)
    stop = asyncio.Event()
    loop = asyncio.new_event_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.run_until_complete(stop.wait())
    controller.stop()
    sys.exit(0)


if __name__ == "__main__":
    main()
