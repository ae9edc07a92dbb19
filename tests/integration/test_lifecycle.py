"""The daemon's life: connection limit, descriptor exhaustion, drain on
SIGTERM, restart, socket activation, sd_notify, the peer policy on a unix
listener, signals, and bad command lines or environments."""

import os
import resource
import signal
import socket
import subprocess
import time

import pytest

from conftest import BINARY, SLOW, VALGRIND, connect, recv_all, wait_for


def args_for(workdir, *extra):
    return ["--listen", f"unix:{workdir}/l.sock", "--backend", f"{workdir}/b.sock", *extra]


def echo_after_eof(conn, _):
    """Reads the request to EOF, then answers with it."""
    conn.sendall(b"echo:" + recv_all(conn))
    conn.shutdown(socket.SHUT_WR)


def test_connection_limit_makes_the_next_one_wait(workdir, run, backends):
    b = backends(f"{workdir}/b.sock", echo_after_eof)
    run(args_for(workdir, "--max-connections", "2"))
    held = [connect(f"{workdir}/l.sock") for _ in range(2)]
    wait_for(lambda: b.accepted == 2, 5, "two backend connections")
    third = connect(f"{workdir}/l.sock")  # waits in the kernel backlog
    third.sendall(b"third")
    third.shutdown(socket.SHUT_WR)
    time.sleep(1)
    assert b.accepted == 2, "the third connection was relayed over the limit"
    third.settimeout(0.1)
    with pytest.raises(socket.timeout):
        third.recv(10)  # not reset, not closed: waiting
    held[0].shutdown(socket.SHUT_WR)
    assert recv_all(held[0]) == b"echo:"
    third.settimeout(10 * SLOW)
    assert recv_all(third) == b"echo:third"
    assert b.accepted == 3
    for s in held:
        s.close()


@pytest.mark.skipif(VALGRIND, reason="valgrind keeps descriptors of its own")
def test_descriptor_exhaustion_backs_off_and_recovers(workdir, run, backends):
    """RLIMIT_NOFILE 16 leaves room for a few connections; 40 more clients
    wait while accept fails with EMFILE. The daemon must not spin, must not
    flood its log, and must serve all of them once descriptors free."""
    b = backends(f"{workdir}/b.sock", echo_after_eof)

    def low_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (16, 16))

    d = run(args_for(workdir, "--log-level", "debug"), preexec_fn=low_limit)
    held = []
    for _ in range(10):
        held.append(connect(f"{workdir}/l.sock"))
    wait_for(lambda: d.log_lines("accept paused"), 5, "accept to fail with EMFILE")
    assert "Too many open files" in d.log_lines("accept paused")[0]
    # The backend is a thread of this process: give it time to take what
    # the daemon dialled before counting.
    wait_for(lambda: b.accepted > 0, 5, "the backend to accept the relayed connections")
    time.sleep(0.2)
    relayed = b.accepted
    assert relayed < 10, "connections were relayed past the descriptor limit"
    waiting = []
    for _ in range(40):
        s = connect(f"{workdir}/l.sock")
        s.sendall(b"w")
        s.shutdown(socket.SHUT_WR)
        waiting.append(s)
    # Exhausted: measure CPU and log growth over 3 seconds.
    lines_before = len(d.log().splitlines())
    cpu_before = d.cpu_seconds()
    time.sleep(3)
    cpu_used = d.cpu_seconds() - cpu_before
    log_growth = len(d.log().splitlines()) - lines_before
    assert cpu_used < 0.05 * 3, f"{cpu_used:.3f} s of CPU in 3 s of exhaustion"
    assert log_growth <= 6, f"{log_growth} log lines in 3 s"
    # The held connections still relay while accept is paused.
    held[0].sendall(b"still")
    held[0].shutdown(socket.SHUT_WR)
    assert recv_all(held[0]) == b"echo:still"
    for s in held:
        s.close()
    for s in waiting:
        assert recv_all(s) == b"echo:w"
    paused = d.log_lines("accept paused")
    assert len(paused) <= 10
    # The repeats held back by the once-a-second limit are counted.
    assert any("similar messages suppressed)" in line for line in paused), paused


def streaming_backend(chunk, count, interval):
    def handler(conn, _):
        for _ in range(count):
            conn.sendall(chunk)
            time.sleep(interval)
        conn.shutdown(socket.SHUT_WR)
        recv_all(conn)
    return handler


def test_sigterm_lets_transfers_in_flight_finish(workdir, run, backends):
    backends(f"{workdir}/b.sock", streaming_backend(b"d" * 100000, 15, 0.1))  # ~1.5 s
    d = run(args_for(workdir, "--drain-timeout", "5"))
    c = connect(f"{workdir}/l.sock")
    c.shutdown(socket.SHUT_WR)
    time.sleep(0.3)
    d.signal(signal.SIGTERM)
    # The listener is closed at once: new connections are not accepted.
    wait_for(lambda: not os.path.exists(f"{workdir}/l.sock"), 2, "the socket file to go")
    assert recv_all(c) == b"d" * 1500000
    assert d.wait(5) == 0
    assert d.log_lines("stopping: 1 connection(s)")


def test_drain_timeout_ends_the_rest_with_eof_not_reset(workdir, run, backends):
    backends(f"{workdir}/b.sock", streaming_backend(b"s" * 1000, 600, 0.05))  # 30 s
    d = run(args_for(workdir, "--drain-timeout", "1"))
    c = connect(f"{workdir}/l.sock")
    c.sendall(b"the client sends something the daemon will not read")
    time.sleep(0.3)
    d.signal(signal.SIGTERM)
    started = time.monotonic()
    data = recv_all(c)  # raises ConnectionResetError on a reset
    assert len(data) > 0 and set(data) == {ord("s")}
    assert d.wait(3) == 0
    assert time.monotonic() - started < 1 + 1 * SLOW + 0.5
    assert d.log_lines("drain timeout: ending 1 connection(s)")


def test_sigterm_relays_the_backlog(workdir, run, backends):
    """Peers waiting to be accepted when SIGTERM comes (their connect()
    completed, their request sent) are relayed under the drain deadline,
    not ended: each gets its full reply."""
    b = backends(f"{workdir}/b.sock", echo_after_eof)
    d = run(args_for(workdir, "--max-connections", "1", "--drain-timeout", "5"))
    held = connect(f"{workdir}/l.sock")
    wait_for(lambda: b.accepted == 1, 5, "the first connection")
    waiting = []
    for i in range(3):
        s = connect(f"{workdir}/l.sock")
        s.sendall(b"queued request %d" % i)
        s.shutdown(socket.SHUT_WR)
        waiting.append(s)
    time.sleep(0.3)
    d.signal(signal.SIGTERM)
    for i, s in enumerate(waiting):
        assert recv_all(s) == b"echo:queued request %d" % i
    held.shutdown(socket.SHUT_WR)
    assert recv_all(held) == b"echo:"
    assert d.wait(5) == 0
    assert b.accepted == 4
    assert d.log_lines("stopping: 3 connection(s) waiting to be accepted taken")


def test_request_sent_while_the_daemon_is_stopped_gets_its_reply(workdir, run, backends):
    """A client connects and sends its request while the daemon is stopped
    (SIGSTOP); SIGTERM, then SIGCONT: the drain relays it in full."""
    backends(f"{workdir}/b.sock", echo_after_eof)
    d = run(args_for(workdir, "--drain-timeout", "5"))
    d.signal(signal.SIGSTOP)
    wait_for(lambda: open(f"/proc/{d.pid}/stat").read().rsplit(")", 1)[1].split()[0] == "T",
             5, "the daemon to stop")
    try:
        c = connect(f"{workdir}/l.sock")
        c.sendall(b"docker ps during zypper up")
        c.shutdown(socket.SHUT_WR)
        d.signal(signal.SIGTERM)
    finally:
        d.signal(signal.SIGCONT)
    assert recv_all(c) == b"echo:docker ps during zypper up"
    assert d.wait(5) == 0


def run_with_inherited_listener(run, sock, args):
    """Starts the daemon with sock passed as fd 3 (LISTEN_FDS=1), the way
    systemd or a parent that keeps the socket across restarts does."""
    fd = sock.fileno()
    return run(args, pass_fds=(fd,), env={"LISTEN_FDS": "1", "LISTEN_FDNAMES": "listener"},
               wrapper=["/bin/bash", "-c", f'LISTEN_PID=$$ exec "$@" 3<&{fd} {fd}<&-', "sh"])


def test_inherited_listener_survives_two_runs(workdir, run, backends):
    """A parent keeps the listening socket across two runs of the daemon:
    the first run's drain leaves it alone, a client that connects between
    the runs waits in the backlog and is served by the second, and connects
    after the second start succeed."""
    backends(f"{workdir}/b.sock", echo_after_eof)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(f"{workdir}/kept.sock")
    sock.listen(64)
    args = ["--backend", f"{workdir}/b.sock", "--drain-timeout", "2"]
    first = run_with_inherited_listener(run, sock, args)
    c = connect(f"{workdir}/kept.sock")
    c.sendall(b"one")
    c.shutdown(socket.SHUT_WR)
    assert recv_all(c) == b"echo:one"
    first.stop()
    between = connect(f"{workdir}/kept.sock")  # no daemon now: the backlog holds it
    between.sendall(b"between the runs")
    between.shutdown(socket.SHUT_WR)
    second = run_with_inherited_listener(run, sock, args)
    assert recv_all(between) == b"echo:between the runs"
    after = connect(f"{workdir}/kept.sock")
    after.sendall(b"two")
    after.shutdown(socket.SHUT_WR)
    assert recv_all(after) == b"echo:two"
    second.stop()
    assert os.path.exists(f"{workdir}/kept.sock"), "an inherited socket's file is not ours to remove"
    assert first.log_lines("stopping: the listener stays open for the next instance")
    sock.close()


def test_second_sigterm_exits_at_once(workdir, run, backends):
    backends(f"{workdir}/b.sock", streaming_backend(b"s" * 1000, 600, 0.05))
    d = run(args_for(workdir, "--drain-timeout", "60"))
    c = connect(f"{workdir}/l.sock")
    time.sleep(0.3)
    d.signal(signal.SIGTERM)
    time.sleep(0.3)
    assert d.proc.poll() is None  # draining
    d.signal(signal.SIGINT)
    assert d.wait(2) == 0
    recv_all(c)  # EOF, not a reset


def test_restart_rebinds_the_same_address_at_once(workdir, run, backends):
    backends(f"{workdir}/b.sock", echo_after_eof)
    first = run(args_for(workdir))
    first.stop()
    second = run(args_for(workdir))
    c = connect(f"{workdir}/l.sock")
    c.sendall(b"again")
    c.shutdown(socket.SHUT_WR)
    assert recv_all(c) == b"echo:again"
    second.stop()
    assert not os.path.exists(f"{workdir}/l.sock"), "clean exit removes the socket file"


def test_stale_socket_file_is_replaced(workdir, run, backends):
    backends(f"{workdir}/b.sock", echo_after_eof)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(f"{workdir}/l.sock")
    stale.close()  # the file stays, nobody listens: a crashed daemon's leftover
    run(args_for(workdir))
    c = connect(f"{workdir}/l.sock")
    c.shutdown(socket.SHUT_WR)
    assert recv_all(c) == b"echo:"


def test_socket_activation(workdir, run, backends):
    backends(f"{workdir}/b.sock", echo_after_eof)
    # No --listen: the default (vsock) must not be used when systemd passes one.
    d = run(["--backend", f"{workdir}/b.sock"],
            wrapper=["systemd-socket-activate", "-l", f"{workdir}/act.sock"], ready=False)
    wait_for(lambda: os.path.exists(f"{workdir}/act.sock"), 5, "the activation socket")
    c = connect(f"{workdir}/act.sock")
    c.sendall(b"activated")
    c.shutdown(socket.SHUT_WR)
    assert recv_all(c) == b"echo:activated"
    assert d.log_lines(f"listening on unix:{workdir}/act.sock")
    d.stop()


class NotifyListener:
    """The NOTIFY_SOCKET a service manager would own."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.1)
        self.messages = []

    def poll(self):
        try:
            while True:
                self.messages.append(self.sock.recv(4096).decode())
        except socket.timeout:
            pass
        return self.messages

    def find(self, text):
        return [m for m in self.poll() if text in m]


def test_sd_notify_ready_status_stopping_watchdog(workdir, run, backends):
    backends(f"{workdir}/b.sock", echo_after_eof)
    n = NotifyListener(f"{workdir}/notify.sock")
    d = run(args_for(workdir, "--drain-timeout", "5"),
            env={"NOTIFY_SOCKET": f"{workdir}/notify.sock", "WATCHDOG_USEC": "200000"})
    wait_for(lambda: n.find("READY=1"), 5, "READY=1")
    assert f"STATUS=listening on unix:{workdir}/l.sock" in n.find("READY=1")[0]
    wait_for(lambda: len(n.find("WATCHDOG=1")) >= 3, 5, "watchdog pings every 100 ms")
    c = connect(f"{workdir}/l.sock")
    wait_for(lambda: n.find("STATUS=active 1, served 1, refused 0, failed 0"), 5,
             "STATUS with one active connection")
    d.signal(signal.SIGTERM)
    wait_for(lambda: n.find("STOPPING=1"), 5, "STOPPING=1")
    wait_for(lambda: n.find("EXTEND_TIMEOUT_USEC="), 5, "EXTEND_TIMEOUT_USEC while draining")
    usec = int(n.find("EXTEND_TIMEOUT_USEC=")[0].split("=")[1])
    assert 1_000_000 <= usec <= 6_000_000
    c.shutdown(socket.SHUT_WR)
    recv_all(c)
    assert d.wait(5) == 0


def test_listener_goes_to_the_descriptor_store_unless_systemd_has_none(workdir, run, backends):
    """Under a service manager the daemon hands its own listener over
    (FDSTORE=1, FDNAME=listener) and, at stop, leaves the socket and its
    file for the next instance. Where systemd says the unit has no store
    (FDSTORE=0, systemd 254 and later), it keeps the socket as its own:
    nothing handed over, and its file removed at exit."""
    backends(f"{workdir}/b.sock", echo_after_eof)
    n = NotifyListener(f"{workdir}/notify.sock")
    env = {"NOTIFY_SOCKET": f"{workdir}/notify.sock"}
    d = run(args_for(workdir), env=env)
    wait_for(lambda: n.find("READY=1"), 5, "READY=1")
    assert n.find("FDSTORE=1\nFDNAME=listener")
    assert d.log_lines("(kept in systemd's descriptor store)")
    d.stop()
    assert os.path.exists(f"{workdir}/l.sock"), "the stored socket's file is the next instance's"
    n.messages.clear()
    second = run(args_for(workdir), env={**env, "FDSTORE": "0"})
    wait_for(lambda: n.find("READY=1"), 5, "READY=1 from the second daemon")
    assert not n.find("FDSTORE=1")
    second.stop()
    assert not os.path.exists(f"{workdir}/l.sock")


def test_status_updates_are_throttled(workdir, run, backends):
    backends(f"{workdir}/b.sock", echo_after_eof)
    n = NotifyListener(f"{workdir}/notify.sock")
    d = run(args_for(workdir), env={"NOTIFY_SOCKET": f"{workdir}/notify.sock"})
    started = time.monotonic()
    for _ in range(100):
        c = connect(f"{workdir}/l.sock")
        c.shutdown(socket.SHUT_WR)
        recv_all(c)
        c.close()
    elapsed = time.monotonic() - started
    wait_for(lambda: n.find("served 100,"), 5, "the final STATUS")
    statuses = [m for m in n.poll() if m.startswith("STATUS=active")]
    # At most 4 a second (plus the first), not one per connection.
    assert len(statuses) <= 4 * (elapsed + 1) + 2, f"{len(statuses)} STATUS in {elapsed:.1f}s"
    d.stop()


def test_notify_socket_pointing_nowhere_still_serves(workdir, run, backends):
    backends(f"{workdir}/b.sock", echo_after_eof)
    d = run(args_for(workdir), env={"NOTIFY_SOCKET": f"{workdir}/nobody-listens"})
    c = connect(f"{workdir}/l.sock")
    c.shutdown(socket.SHUT_WR)
    assert recv_all(c) == b"echo:"
    assert len(d.log_lines("cannot notify systemd")) == 1
    d.stop()


def test_unix_peer_policy_refuses_other_uids(workdir, run, backends):
    b = backends(f"{workdir}/b.sock", echo_after_eof)
    d = run(args_for(workdir, "--allow-uid", "0"))
    os.chmod(workdir, 0o755)
    os.chmod(f"{workdir}/l.sock", 0o777)
    code = (
        "import socket,sys\n"
        "ok=0\n"
        "for i in range(200):\n"
        "    s=socket.socket(socket.AF_UNIX); s.settimeout(5); s.connect(sys.argv[1])\n"
        "    try:\n"
        "        ok += s.recv(10) == b''\n"
        "    except ConnectionResetError:\n"
        "        ok += 1\n"
        "    s.close()\n"
        "print(ok)\n"
    )
    out = subprocess.run(["/usr/bin/python3", "-c", code, f"{workdir}/l.sock"], capture_output=True,
                         timeout=60 * SLOW, preexec_fn=lambda: (os.setgid(65534), os.setuid(65534)))
    assert out.stdout.strip() == b"200", out.stderr
    assert b.accepted == 0, "a refused peer reached the backend"
    refused = d.log_lines("refused peer uid=65534")
    assert 1 <= len(refused) <= 3, f"{len(refused)} refusal lines for 200 refused peers"
    assert refused[0].startswith("<4>")
    # Root (allowed) still gets through.
    c = connect(f"{workdir}/l.sock")
    c.shutdown(socket.SHUT_WR)
    assert recv_all(c) == b"echo:"
    assert b.accepted == 1


def test_sigusr1_logs_counters_and_sighup_is_harmless(workdir, run, backends):
    backends(f"{workdir}/b.sock", echo_after_eof)
    d = run(args_for(workdir))
    c = connect(f"{workdir}/l.sock")
    c.sendall(b"12345")
    c.shutdown(socket.SHUT_WR)
    recv_all(c)
    time.sleep(0.2)
    d.signal(signal.SIGUSR1)
    d.signal(signal.SIGHUP)
    wait_for(lambda: d.log_lines("counters: "), 5, "the counters line")
    assert "active=0 served=1 refused=0 failed=0 bytes_in=5 bytes_out=10" in d.log_lines("counters: ")[0]
    assert d.proc.poll() is None
    d.stop()


@pytest.mark.parametrize("argv", [
    ["--bogus"],
    ["--listen"],
    ["--listen", "vsock:0"],
    ["--listen", "vsock:4294967295"],
    ["--listen", "unix:"],
    ["--listen", "tcp:80"],
    ["--backend", ""],
    ["--allow-cid", "two"],
    ["--allow-uid", "-1"],
    ["--max-connections", "0"],
    ["--max-connections", "5000"],
    ["--drain-timeout", "soon"],
    ["--log-level", "verbose"],
    ["extra"],
    ["--log-level", "debug\n<3>a forged second line"],
])
def test_bad_command_line_exits_2_with_one_line(workdir, argv):
    sock = f"{workdir}/never.sock"
    out = subprocess.run([BINARY, "--listen", f"unix:{sock}", *argv], capture_output=True, timeout=10)
    assert out.returncode == 2
    assert out.stdout == b""
    lines = out.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rdd-guest: "), out.stderr
    assert not os.path.exists(sock), "a socket was opened before the error"


def test_help_and_version(workdir):
    out = subprocess.run([BINARY, "--version"], capture_output=True, timeout=10)
    version = open(os.path.join(os.path.dirname(__file__), "../../VERSION")).read().strip()
    assert out.returncode == 0 and out.stdout.decode() == f"rdd-guest {version}\n"
    out = subprocess.run([BINARY, "--help"], capture_output=True, timeout=10)
    assert out.returncode == 0 and b"--allow-cid" in out.stdout


@pytest.mark.parametrize("env,expect", [
    ({"LISTEN_FDS": "abc", "LISTEN_PID": "self"}, "socket activation"),
    ({"LISTEN_FDS": "2", "LISTEN_PID": "self"}, "socket activation"),
])
def test_broken_listen_fds_is_a_clear_error(workdir, env, expect):
    full = dict(os.environ)
    out = subprocess.run(
        ["/bin/sh", "-c", f'LISTEN_PID=$$ LISTEN_FDS={env["LISTEN_FDS"]} exec "$0" "$@"', BINARY,
         "--listen", f"unix:{workdir}/x.sock"],
        capture_output=True, timeout=10, env=full)
    assert out.returncode == 1
    lines = out.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("<3>") and expect in lines[0], out.stderr


def test_listen_path_that_is_a_regular_file_is_not_removed(workdir):
    path = f"{workdir}/file"
    with open(path, "w") as f:
        f.write("keep me")
    out = subprocess.run([BINARY, "--listen", f"unix:{path}"], capture_output=True, timeout=10)
    assert out.returncode == 1
    assert b"exists and is not a socket" in out.stderr
    assert open(path).read() == "keep me"


@pytest.mark.parametrize("kind", ["file", "directory"])
def test_backend_path_that_is_not_a_socket(workdir, run, kind):
    path = f"{workdir}/b.sock"
    if kind == "file":
        open(path, "w").close()
    else:
        os.mkdir(path)
    d = run(args_for(workdir))
    c = connect(f"{workdir}/l.sock")
    try:
        assert c.recv(10) == b""
    except ConnectionResetError:
        pass
    wait_for(lambda: d.log_lines("cannot reach the backend"), 5, "the dial failure line")
    assert d.proc.poll() is None


def test_live_socket_at_the_listen_path_is_not_taken_over(workdir):
    """Another process listens there (its backlog even full): exit 1 at
    once, and that process keeps its socket."""
    live = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    live.bind(f"{workdir}/l.sock")
    live.listen(0)
    fillers = []
    for _ in range(3):  # fill the backlog: a blocking probe would hang here
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.connect(f"{workdir}/l.sock")
        except BlockingIOError:
            pass
        fillers.append(s)
    out = subprocess.run([BINARY, "--listen", f"unix:{workdir}/l.sock"], capture_output=True, timeout=10)
    assert out.returncode == 1
    assert b"another process is listening there" in out.stderr
    assert os.path.exists(f"{workdir}/l.sock")
    live.close()


def as_nobody():
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to make a socket another user cannot probe")
def test_live_socket_the_daemon_cannot_probe_is_not_taken_over(workdir):
    """An unprivileged daemon pointed at a live root-owned 0700 socket gets
    EACCES on the probe: that proves nothing, so it exits 1 with one line,
    and the socket file and its listener stay."""
    pub = os.path.join(workdir, "pub")
    os.mkdir(pub)
    os.chmod(pub, 0o777)  # no sticky bit: the daemon could unlink it
    os.chmod(workdir, 0o755)
    path = os.path.join(pub, "l.sock")
    live = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    live.bind(path)
    live.listen(8)
    os.chmod(path, 0o700)
    out = subprocess.run([BINARY, "--listen", f"unix:{path}", "--backend", f"{workdir}/b.sock"],
                         capture_output=True, timeout=10, preexec_fn=as_nobody)
    lines = out.stderr.decode().strip().splitlines()
    assert out.returncode == 1, out.stderr
    assert len(lines) == 1 and "probing it failed (Permission denied)" in lines[0], lines
    c = connect(path)  # still live, still the same listener
    live.settimeout(5)
    accepted, _ = live.accept()
    accepted.close()
    c.close()
    live.close()


def test_exit_removes_only_the_socket_file_it_created(workdir, run, backends):
    """The daemon's socket file was replaced by another process's socket
    while it ran: at exit the daemon leaves that one alone."""
    backends(f"{workdir}/b.sock", echo_after_eof)
    d = run(args_for(workdir))
    os.unlink(f"{workdir}/l.sock")
    other = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    other.bind(f"{workdir}/l.sock")
    other.listen(8)
    d.stop()
    assert os.path.exists(f"{workdir}/l.sock")
    c = connect(f"{workdir}/l.sock")
    other.settimeout(5)
    other.accept()[0].close()
    c.close()
    other.close()
