"""A private Dovecot IMAP server in one folder on a loopback port: the mailbox the IMAP poller
reads in tests and in a local run; `python -m deploy.local.dovecot run`.

Everything lives under the folder (config, passwd-file, Maildirs, logs, sockets), so it never
touches the system's Dovecot. Debian's package is `dovecot-imapd`. Dovecot never serves mail
as root: started as root, it runs the login processes as its own unprivileged users and keeps
the mail as its `dovecot` user; started as anyone else, everything runs as that user.
"""

import argparse
import contextlib
import grp
import imaplib
import mailbox
import os
import pwd
import shutil
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from deploy.local.harness import wait_for_port

DEFAULT_PORT = 11143  # the local run's IMAP port, beside the stack's other 1xxxx ports
CONFIG = """\
# Written by deploy/local/dovecot.py; a private, loopback-only IMAP server.
base_dir = {folder}/run
state_dir = {folder}/state
log_path = {folder}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
# Plaintext logins are fine here: the server listens on loopback only.
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = {uid}
last_valid_uid = {uid}
first_valid_gid = {gid}
mail_location = maildir:{folder}/mail/%n
mail_uid = {uid}
mail_gid = {gid}
default_internal_user = {internal_user}
default_internal_group = {internal_group}
default_login_user = {login_user}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%n {folder}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={folder}/home/%n
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0666
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
"""


def dovecot_bin() -> str:
    found = shutil.which("dovecot") or (
        "/usr/sbin/dovecot" if Path("/usr/sbin/dovecot").exists() else None
    )
    if found is None:
        raise SystemExit("dovecot not found: apt-get install -y dovecot-imapd")
    return found


@dataclass
class Dovecot:
    """One private Dovecot: `folder` holds everything, `port` is its IMAP port on 127.0.0.1,
    and `user` (password `password`) is its one mailbox."""

    folder: Path
    port: int
    user: str = "support"
    password: str = "support"
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def config(self) -> Path:
        return self.folder / "dovecot.conf"

    @property
    def maildir(self) -> Path:
        """The user's INBOX."""
        return self.folder / "mail" / self.user

    def prepare(self) -> None:
        """Write the config, the passwd-file and an empty INBOX."""
        for sub in ("run", "state", "home", "mail"):
            (self.folder / sub).mkdir(parents=True, exist_ok=True)
        # The login processes run as dovenull/dovecot when started as root: they must reach
        # the folder (and base_dir) to find the sockets.
        self.folder.chmod(0o755)
        (self.folder / "run").chmod(0o755)
        mailbox.Maildir(str(self.maildir), create=True)
        uid, gid = os.getuid(), os.getgid()
        if uid == 0:
            _check_reachable(self.folder)
            internal_user, internal_group, login_user = "dovecot", "dovecot", "dovenull"
            owner = pwd.getpwnam("dovecot")
            uid, gid = owner.pw_uid, owner.pw_gid
            for path in (self.folder / "mail", self.folder / "home"):
                _chown_tree(path, uid, gid)
        else:
            me = pwd.getpwuid(uid).pw_name
            internal_user = login_user = me
            internal_group = _group_name(gid)
        self.config.write_text(
            CONFIG.format(
                folder=self.folder,
                port=self.port,
                uid=uid,
                gid=gid,
                internal_user=internal_user,
                internal_group=internal_group,
                login_user=login_user,
            )
        )
        passwd = self.folder / "passwd"
        passwd.write_text(f"{self.user}:{{PLAIN}}{self.password}::::::\n")
        passwd.chmod(0o644)  # the auth process reads it as Dovecot's internal user

    def argv(self) -> list[str]:
        return [dovecot_bin(), "-F", "-c", str(self.config)]

    def start(self) -> None:
        self.prepare()
        with open(self.folder / "dovecot.out", "ab") as out:  # the child keeps its own copy
            self.proc = subprocess.Popen(self.argv(), stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_for_port(self.port, timeout=20)
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"dovecot did not start: see {self.folder}/dovecot.log") from None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def deliver(self, raw: bytes, *, folder: str = "INBOX") -> None:
        """Put one message into `folder` over IMAP (APPEND), unseen, as a mail server would."""
        client = imaplib.IMAP4("127.0.0.1", self.port, timeout=10)
        try:
            client.login(self.user, self.password)
            status, answer = client.append(folder, "", None, raw)
            if status != "OK":
                raise RuntimeError(f"APPEND refused: {answer!r}")
        finally:
            client.logout()


def _check_reachable(folder: Path) -> None:
    """Dovecot's own users must be able to pass through every folder above `folder`."""
    for parent in folder.resolve().parents:
        if not parent.stat().st_mode & stat.S_IXOTH:
            raise RuntimeError(
                f"Dovecot's unprivileged users cannot reach {folder}: {parent} is private. "
                "Use a folder every user can pass through, e.g. under /tmp or /var/tmp."
            )


def _chown_tree(path: Path, uid: int, gid: int) -> None:
    os.chown(path, uid, gid)
    for root, dirs, files in os.walk(path):
        for name in (*dirs, *files):
            os.chown(os.path.join(root, name), uid, gid)


def _group_name(gid: int) -> str:
    return grp.getgrgid(gid).gr_name


@contextlib.contextmanager
def running_dovecot(
    folder: Path, port: int, *, user: str = "support", password: str = "support"
) -> Iterator[Dovecot]:
    """A started Dovecot in `folder` on `port`, stopped afterwards."""
    server = Dovecot(folder=folder, port=port, user=user, password=password)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def main() -> None:
    env = os.environ
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run", help="prepare the folder and exec Dovecot in the foreground")
    run.add_argument(
        "--folder",
        type=Path,
        default=Path(env.get("CARELOOP_VAR_DIR", "var")) / "dovecot",
        help="where everything lives (default: $CARELOOP_VAR_DIR/dovecot, else var/dovecot)",
    )
    run.add_argument(
        "--port",
        type=int,
        default=int(env.get("CARELOOP_MAIL_IMAP_PORT", DEFAULT_PORT)),
        help=f"IMAP port on 127.0.0.1 (default: $CARELOOP_MAIL_IMAP_PORT, else {DEFAULT_PORT})",
    )
    run.add_argument("--user", default=env.get("CARELOOP_MAIL_IMAP_USER", "support"))
    run.add_argument("--password", default=env.get("CARELOOP_MAIL_IMAP_PASSWORD", "support"))
    args = parser.parse_args()
    server = Dovecot(
        folder=args.folder.resolve(), port=args.port, user=args.user, password=args.password
    )
    server.prepare()
    argv = server.argv()
    os.execvp(argv[0], argv)  # the process supervisor stops Dovecot itself


if __name__ == "__main__":
    main()
