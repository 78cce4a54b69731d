"""A MariaDB Galera cluster on loopback for the cluster tests, without systemd.

`GaleraCluster(size=3).start()` makes a scratch directory, installs the system
tables for node 1, bootstraps it (--wsrep-new-cluster), then starts the joiners
one at a time (each gets a full copy from a donor by rsync SST) and waits until
every node is Synced in a cluster of `size`. Each node listens on its own
loopback ports (SQL, gcomm, IST, SST), chosen free below the ephemeral range so
no client socket takes one while a node is down.

Nodes are numbered from 1, as in the logs: `url(1)`, `pid(3)`, `kill(3)`,
`rejoin(3)`. `urls` and `pids` list them in node order.

Every node is a child of this process (in its own session, so a Ctrl-C in the
test run does not reach it) and is only ever signalled by the PID we started:
`stop()` sends SIGTERM to each node's process group, SIGKILL after a grace, and
removes the directory. Nothing here touches any other MariaDB on the machine.

As root the nodes run as the package's `mysql` user (the rsync SST daemon drops
to an unprivileged user and could not write a root-owned datadir otherwise), so
the scratch directory is handed to that user.
"""

import atexit
import os
import pwd
import random
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pymysql

MARIADBD = "/usr/sbin/mariadbd"
PROVIDERS = (
    "/usr/lib/galera/libgalera_smm.so",  # Debian, Ubuntu
    "/usr/lib/galera-4/libgalera_smm.so",
    "/usr/lib64/galera-4/libgalera_smm.so",  # RHEL family
)
DATABASE = "booking_cluster"
PORT_RANGE = (20000, 32000)  # below Linux's default ephemeral range (32768-60999)
RECOVERED = re.compile(r"WSREP: Recovered position:\s*(\S+:-?\d+)")
PREPARED_IST = re.compile(r"WSREP: Prepared IST receiver for (-?\d+)-")


def provider() -> str | None:
    return next((path for path in PROVIDERS if Path(path).exists()), None)


def missing_parts() -> list[str]:
    """What a cluster needs and this machine lacks (empty when it can run one)."""
    missing = []
    if not Path(MARIADBD).exists():
        missing.append(MARIADBD)
    if provider() is None:
        missing.append("libgalera_smm.so (galera-4)")
    for tool in ("mariadb-install-db", "rsync", "wsrep_sst_rsync"):
        if shutil.which(tool) is None:
            missing.append(tool)
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("mysql")
        except KeyError:
            missing.append("the 'mysql' user")
    return missing


def _port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(count: int) -> list[int]:
    """`count` consecutive loopback ports nobody listens on, outside the ephemeral range."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(PORT_RANGE[0], PORT_RANGE[1] - count)
        ports = list(range(base, base + count))
        if all(_port_is_free(port) for port in ports):
            return ports
    raise RuntimeError(f"no {count} free consecutive ports in {PORT_RANGE}")


class GaleraError(RuntimeError):
    pass


class Node:
    """One mariadbd: its directory, ports and process."""

    def __init__(self, number: int, home: Path, ports: list[int]):
        self.number = number
        self.home = home
        self.sql_port, self.gcomm_port, self.ist_port, self.sst_port = ports
        self.process: subprocess.Popen | None = None

    @property
    def socket(self) -> Path:
        return self.home / "mysql.sock"

    @property
    def error_log(self) -> Path:
        return self.home / "error.log"

    @property
    def cnf(self) -> Path:
        return self.home / "my.cnf"

    def url(self, database: str = DATABASE) -> str:
        return f"mysql+pymysql://root@127.0.0.1:{self.sql_port}/{database}?charset=utf8mb4"

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.error_log.read_text(errors="replace")
        except OSError:
            return "(no error log)"
        return "\n".join(text.splitlines()[-lines:])


class GaleraCluster:
    """`size` MariaDB Galera nodes on loopback; see the module docstring."""

    def __init__(self, size: int = 3, database: str = DATABASE, timeout: float = 120):
        self.size = size
        self.database = database
        self.timeout = timeout
        self.provider = provider()
        self.user = "mysql" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
        self.dir: Path | None = None
        self.nodes: list[Node] = []
        self.start_seconds: float | None = None
        self.rejoins: list[dict] = []  # how each rejoin went: node, seconds, ist or sst

    # -- what tests use ---------------------------------------------------------

    @property
    def urls(self) -> list[str]:
        """Each node's SQLAlchemy URL for the booking database, in node order."""
        return [node.url(self.database) for node in self.nodes]

    @property
    def pids(self) -> list[int | None]:
        return [node.process.pid if node.alive() else None for node in self.nodes]

    def node(self, number: int) -> Node:
        if not 1 <= number <= len(self.nodes):
            raise IndexError(f"no node {number}: nodes are 1..{len(self.nodes)}")
        return self.nodes[number - 1]

    def url(self, number: int) -> str:
        return self.node(number).url(self.database)

    def pid(self, number: int) -> int | None:
        node = self.node(number)
        return node.process.pid if node.alive() else None

    def kill(self, number: int) -> None:
        """SIGKILL node `number` (a crash: no shutdown, no goodbye to the group)."""
        node = self.node(number)
        if not node.alive():
            raise GaleraError(f"node {number} is not running")
        self._signal(node, signal.SIGKILL)
        node.process.wait(10)
        self._signal(node, signal.SIGKILL)  # helpers left in its process group, if any

    def rejoin(self, number: int) -> dict:
        """Start a stopped or killed node on its old datadir; wait for Synced and full size.

        The position is recovered from InnoDB first (mariadbd --wsrep-recover, as
        the packaged service does), so the node can catch up by IST from a donor's
        gcache; without a position it would ask for a full SST.
        """
        node = self.node(number)
        if node.alive():
            raise GaleraError(f"node {number} is still running")
        started = time.monotonic()
        position = self._recover_position(node)
        mark = node.error_log.stat().st_size if node.error_log.exists() else 0
        args = [f"--wsrep-start-position={position}"] if position else []
        self._launch(node, *args)
        self._wait(node, "Synced after rejoining", lambda: self._synced(node))
        self.wait_for_size()
        log = node.error_log.read_text(errors="replace")[mark:]
        # The joiner prepares to receive writesets from its recovered position on:
        # from 1 or later it is an IST; from 0 a full SST came first.
        prepared = PREPARED_IST.findall(log)
        how = "ist" if prepared and int(prepared[-1]) > 0 else "sst"
        report = {
            "node": number,
            "seconds": round(time.monotonic() - started, 1),
            "position": position,
            "how": how,
        }
        self.rejoins.append(report)
        return report

    start_node = rejoin

    def status(self, number: int, name: str) -> str | None:
        """A global status variable of node `number` (None if it does not answer)."""
        try:
            rows = self.query(number, "SHOW GLOBAL STATUS LIKE %s", (name,))
        except pymysql.MySQLError:
            return None
        return rows[0][1] if rows else None

    def query(self, number: int, sql: str, args=None, database: str | None = None) -> list:
        """Run one statement on node `number` through its socket as root; return the rows."""
        node = self.node(number)
        conn = pymysql.connect(
            unix_socket=str(node.socket),
            user="root",
            database=database,
            autocommit=True,
            connect_timeout=3,
            read_timeout=30,
        )
        try:
            with conn.cursor() as cursor:
                cursor.execute(sql, args)
                return list(cursor.fetchall())
        finally:
            conn.close()

    def wait_for_size(self, size: int | None = None) -> None:
        """Wait until every running node is Synced and sees a cluster of `size`."""
        size = self.size if size is None else size
        for node in self.nodes:
            if node.alive():
                self._wait(
                    node,
                    f"Synced in a cluster of {size}",
                    lambda node=node: (
                        self._synced(node)
                        and self.status(node.number, "wsrep_cluster_size") == str(size)
                    ),
                )

    # -- start and stop ---------------------------------------------------------

    def start(self) -> "GaleraCluster":
        missing = missing_parts()
        if missing:
            raise GaleraError("cannot run a Galera cluster, missing: " + ", ".join(missing))
        started = time.monotonic()
        atexit.register(self.stop)
        try:
            self._prepare()
            first = self.nodes[0]
            self._launch(first, "--wsrep-new-cluster")
            self._wait(first, "bootstrapped (Synced)", lambda: self._synced(first))
            # TCP logins for the app: root@127.0.0.1 without a password (the
            # installed root@localhost only matches the socket under
            # skip-name-resolve). Made on node 1, it reaches the joiners by SST.
            self.query(1, "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY ''")
            self.query(1, "GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION")
            # One joiner at a time: simultaneous joins make gcomm renegotiate views.
            for node in self.nodes[1:]:
                self._launch(node)
                self._wait(node, "joined (Synced)", lambda node=node: self._synced(node))
            self.wait_for_size()
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - started
        return self

    def create_database(self, migrate: Callable[[str], None]) -> None:
        """Create the booking database on node 1, migrate it there, check every node has it."""
        self.query(1, f"CREATE DATABASE {self.database} CHARACTER SET utf8mb4")
        migrate(self.url(1))
        want = self._schema(1)
        if not {"events", "bookings", "waiting_list_entries", "alembic_version"} <= set(want):
            raise GaleraError(f"the migration did not create the tables on node 1: {want}")
        for node in self.nodes[1:]:
            self._wait(
                node,
                "the migrated schema replicated",
                lambda node=node: self._schema(node.number) == want,
            )

    def stop(self, grace: float = 10) -> None:
        """SIGTERM every node we started (by PID), SIGKILL after `grace`; remove the directory."""
        running = [node for node in self.nodes if node.alive()]
        for node in running:
            self._signal(node, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for node in running:
            try:
                node.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self._signal(node, signal.SIGKILL)
                node.process.wait(10)
            self._signal(node, signal.SIGKILL)  # SST helpers left in its group, if any
        if self.dir is not None:
            if os.environ.get("GALERA_KEEP_DIR"):
                print(f"\n[galera] kept {self.dir}")
            else:
                shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None
        atexit.unregister(self.stop)

    # -- inside -----------------------------------------------------------------

    def _prepare(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="galera-"))
        self.dir.chmod(0o755)
        ports = free_ports(4 * self.size)
        self.nodes = [
            Node(i + 1, self.dir / f"n{i + 1}", ports[4 * i : 4 * i + 4]) for i in range(self.size)
        ]
        members = ",".join(f"127.0.0.1:{node.gcomm_port}" for node in self.nodes)
        for node in self.nodes:
            (node.home / "data").mkdir(parents=True)
            (node.home / "tmp").mkdir()
            node.cnf.write_text(self._cnf(node, members))
        installed = subprocess.run(
            [
                shutil.which("mariadb-install-db") or "mariadb-install-db",
                "--no-defaults",
                f"--datadir={self.nodes[0].home / 'data'}",
                f"--user={self.user}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if installed.returncode != 0:
            raise GaleraError(f"mariadb-install-db failed:\n{installed.stdout}{installed.stderr}")
        if os.geteuid() == 0:
            account = pwd.getpwnam(self.user)
            for path in [self.dir, *self.dir.rglob("*")]:
                os.chown(path, account.pw_uid, account.pw_gid, follow_symlinks=False)

    def _cnf(self, node: Node, members: str) -> str:
        options = ";".join(
            [
                "base_host=127.0.0.1",
                f"base_port={node.gcomm_port}",
                f"gmcast.listen_addr=tcp://127.0.0.1:{node.gcomm_port}",
                f"ist.recv_addr=127.0.0.1:{node.ist_port}",
                "gcache.size=32M",
            ]
        )
        return f"""[mysqld]
user={self.user}
datadir={node.home / "data"}
socket={node.socket}
pid-file={node.home / "mysqld.pid"}
log-error={node.error_log}
tmpdir={node.home / "tmp"}
port={node.sql_port}
bind-address=127.0.0.1
skip-name-resolve
binlog_format=ROW
default_storage_engine=InnoDB
innodb_autoinc_lock_mode=2
innodb_buffer_pool_size=64M
innodb_log_file_size=48M
innodb_flush_log_at_trx_commit=2
performance_schema=OFF
max_connections=200
wsrep_on=ON
wsrep_provider={self.provider}
wsrep_cluster_name=booking-tests
wsrep_cluster_address=gcomm://{members}
wsrep_node_name=n{node.number}
wsrep_node_address=127.0.0.1:{node.gcomm_port}
wsrep_node_incoming_address=127.0.0.1:{node.sql_port}
wsrep_sst_method=rsync
wsrep_sst_receive_address=127.0.0.1:{node.sst_port}
wsrep_provider_options="{options}"
"""

    def _launch(self, node: Node, *args: str) -> None:
        with open(node.home / "stdout.log", "ab") as out:
            node.process = subprocess.Popen(
                [MARIADBD, f"--defaults-file={node.cnf}", *args],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                # Its own session and process group: our Ctrl-C does not reach
                # it, and signalling the group also reaches its SST helpers.
                start_new_session=True,
            )

    def _recover_position(self, node: Node) -> str | None:
        log = node.home / "recover.log"
        log.unlink(missing_ok=True)
        try:
            subprocess.run(
                [MARIADBD, f"--defaults-file={node.cnf}", "--wsrep-recover", f"--log-error={log}"],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=60,
                check=False,
            )
            found = RECOVERED.findall(log.read_text(errors="replace"))
        except (OSError, subprocess.TimeoutExpired):
            return None
        if not found or found[-1].endswith(":-1"):
            return None
        return found[-1]

    @staticmethod
    def _signal(node: Node, sig: int) -> None:
        # Only the process we started, while it (or its group) still exists:
        # the PID cannot have been reused before we reaped it.
        if node.process is None:
            return
        try:
            os.killpg(node.process.pid, sig)
        except (ProcessLookupError, PermissionError):
            if node.process.poll() is None:
                node.process.send_signal(sig)

    def _synced(self, node: Node) -> bool:
        return (
            self.status(node.number, "wsrep_local_state_comment") == "Synced"
            and self.status(node.number, "wsrep_ready") == "ON"
        )

    def _schema(self, number: int) -> dict[str, int]:
        """Tables of the booking database on node `number`, with alembic's version as a check."""
        try:
            tables = self.query(
                number,
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                (self.database,),
            )
            found = {name: 0 for (name,) in tables}
            if "alembic_version" in found:
                found["alembic_version"] = len(
                    self.query(number, f"SELECT version_num FROM {self.database}.alembic_version")
                )
        except pymysql.MySQLError:
            return {}
        return found

    def _wait(self, node: Node, what: str, condition: Callable[[], bool]) -> None:
        deadline = time.monotonic() + self.timeout
        while not condition():
            for other in self.nodes:
                exited = other.process is not None and other.process.poll() is not None
                # A node a test killed may stay down; any other exit is a failure.
                if exited and (other is node or other.process.returncode != -signal.SIGKILL):
                    raise GaleraError(
                        f"node {other.number} exited ({other.process.returncode}) while"
                        f" waiting for node {node.number}: {what}\n{other.log_tail()}"
                    )
            if time.monotonic() > deadline:
                raise GaleraError(
                    f"timed out after {self.timeout} s waiting for node {node.number}: {what}\n"
                    + node.log_tail()
                )
            time.sleep(0.2)
