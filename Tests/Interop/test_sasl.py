"""SASL_PLAINTEXT listeners beside PLAINTEXT: PLAIN users from the JAAS line, SCRAM-SHA-256/512
credentials made through the Admin API, principals that ACLs tell apart, and what happens to
clients that get it wrong. confluent-kafka and kafka-python against the real broker."""
import socket
import struct
import time

import pytest
from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import (AclBinding, AclOperation, AclPermissionType, AdminClient, NewTopic, ResourcePatternType,
                                   ResourceType, ScramCredentialInfo, ScramMechanism, UserScramCredentialUpsertion)

from conftest import free_port, wait_for

JAAS = ('org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="admin-secret" '
        'user_admin="admin-secret" user_alice="alice-secret" user_bob="bob-secret";')


def start(make_sluice, extra=()):
    """A broker with PLAINTEXT on s.port and SASL_PLAINTEXT (PLAIN, SCRAM-SHA-256/512) on s.sasl_port."""
    s = make_sluice()
    s.sasl_port = free_port()
    s.overrides = [f"listeners=PLAINTEXT://127.0.0.1:{s.port},SASL_PLAINTEXT://127.0.0.1:{s.sasl_port}",
                   "sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
                   f"listener.name.sasl_plaintext.plain.sasl.jaas.config={JAAS}",
                   "group.initial.rebalance.delay.ms=0", *extra]
    return s.start()


def sasl_conf(s, mechanism, user, password):
    return {"bootstrap.servers": f"127.0.0.1:{s.sasl_port}", "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": mechanism, "sasl.username": user, "sasl.password": password}


def deliver(conf, topic, value=b"v", timeout=15):
    """Produces one record; returns the delivery error (None: stored) and the client errors seen."""
    errors = []
    p = Producer(dict(conf, **{"message.timeout.ms": 8000, "error_cb": errors.append}))
    result = []
    p.produce(topic, value, on_delivery=lambda err, msg: result.append(err))
    p.flush(timeout)
    return (result[0] if result else "no report"), errors


def test_plain_login_produces_and_wrong_password_is_refused(make_sluice):
    s = start(make_sluice)
    err, _ = deliver(sasl_conf(s, "PLAIN", "alice", "alice-secret"), "sasl-t")
    assert err is None
    err, errors = deliver(sasl_conf(s, "PLAIN", "alice", "wrong"), "sasl-t", timeout=10)
    assert err is not None
    assert any(e.code() == KafkaError._AUTHENTICATION for e in errors), errors
    assert any("Authentication failed" in e.str() for e in errors), errors
    # The broker is unharmed: the right password still works.
    assert deliver(sasl_conf(s, "PLAIN", "bob", "bob-secret"), "sasl-t")[0] is None


@pytest.mark.parametrize("mechanism,code", [("SCRAM-SHA-256", ScramMechanism.SCRAM_SHA_256), ("SCRAM-SHA-512", ScramMechanism.SCRAM_SHA_512)])
def test_scram_login_with_credentials_from_the_admin_api(make_sluice, mechanism, code):
    s = start(make_sluice)
    a = AdminClient({"bootstrap.servers": s.bootstrap})
    a.alter_user_scram_credentials([UserScramCredentialUpsertion("carol", ScramCredentialInfo(code, 8192), b"carol-pw", b"NaCl-carol")],
                                   request_timeout=15)["carol"].result(15)
    assert deliver(sasl_conf(s, mechanism, "carol", "carol-pw"), "scram-t")[0] is None
    err, errors = deliver(sasl_conf(s, mechanism, "carol", "not-it"), "scram-t", timeout=10)
    assert err is not None and any(e.code() == KafkaError._AUTHENTICATION for e in errors), errors
    # Credentials live in the metadata log: a restart keeps them.
    s.restart()
    assert deliver(sasl_conf(s, mechanism, "carol", "carol-pw"), "scram-t")[0] is None


def test_kafka_python_plain_login(make_sluice):
    from kafka import KafkaConsumer, KafkaProducer
    s = start(make_sluice)
    common = dict(bootstrap_servers=f"127.0.0.1:{s.sasl_port}", security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN",
                  sasl_plain_username="alice", sasl_plain_password="alice-secret")
    p = KafkaProducer(**common)
    p.send("kp-sasl", b"hello").get(timeout=15)
    p.close()
    c = KafkaConsumer("kp-sasl", auto_offset_reset="earliest", consumer_timeout_ms=10000, **common)
    assert [m.value for m in c] == [b"hello"]
    c.close()


def test_acls_tell_sasl_users_apart(make_sluice):
    s = start(make_sluice, ["authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
                            "super.users=User:admin", "allow.everyone.if.no.acl.found=false"])
    admin = AdminClient(sasl_conf(s, "PLAIN", "admin", "admin-secret"))
    for f in admin.create_topics([NewTopic("ledger", 1, 1)]).values():
        f.result(15)
    for f in admin.create_acls([AclBinding(ResourceType.TOPIC, "ledger", ResourcePatternType.LITERAL, "User:alice", "*",
                                           AclOperation.WRITE, AclPermissionType.ALLOW)], request_timeout=15).values():
        f.result(15)
    assert deliver(sasl_conf(s, "PLAIN", "alice", "alice-secret"), "ledger")[0] is None
    err, _ = deliver(sasl_conf(s, "PLAIN", "bob", "bob-secret"), "ledger")
    assert err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    # The PLAINTEXT listener's clients are User:ANONYMOUS: no ACL, nothing allowed.
    err, _ = deliver({"bootstrap.servers": s.bootstrap}, "ledger")
    assert err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


def raw(port):
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    return sock


def closed(sock):
    try:
        return sock.recv(65536) == b""
    except (ConnectionResetError, socket.timeout):
        return True


def test_requests_before_login_and_large_frames_close_the_connection(make_sluice):
    s = start(make_sluice)
    # A Metadata request (v1, no topics) before any SASL handshake.
    body = struct.pack(">hhi", 3, 1, 7) + struct.pack(">h", 3) + b"raw" + struct.pack(">i", 0)
    sock = raw(s.sasl_port)
    sock.sendall(struct.pack(">i", len(body)) + body)
    assert closed(sock)
    # A frame announced larger than sasl.server.max.receive.size (512 KiB) before the login.
    sock = raw(s.sasl_port)
    sock.sendall(struct.pack(">i", 1 << 20) + b"\0" * 64)
    assert closed(sock)
    # Garbage: not a Kafka frame at all.
    sock = raw(s.sasl_port)
    sock.sendall(b"GET / HTTP/1.1\r\n\r\n" * 4)
    assert closed(sock)
    # Meanwhile logins on other connections work.
    assert deliver(sasl_conf(s, "PLAIN", "alice", "alice-secret"), "after-garbage")[0] is None


def test_listener_config_errors_stop_the_broker_at_start(make_sluice):
    s = make_sluice()
    s.overrides = [f"listeners=PLAINTEXT://127.0.0.1:{s.port},SASL_PLAINTEXT://127.0.0.1:{free_port()}",
                   "sasl.enabled.mechanisms=GSSAPI"]
    with pytest.raises(RuntimeError) as e:
        s.start()
    assert "sasl.enabled.mechanisms" in str(e.value)


def test_configs_cli_like_kafka_configs(make_sluice):
    """`sluice configs --entity-type users` salts the password itself, as kafka-configs.sh does;
    the credential then logs in over SCRAM."""
    import subprocess
    from conftest import BINARY
    s = start(make_sluice)

    def cli(*args):
        return subprocess.run([BINARY, "configs", "--bootstrap-server", s.bootstrap, "--entity-type", "users", *args],
                              capture_output=True, text=True, timeout=60)

    r = cli("--alter", "--entity-name", "dave", "--add-config", "SCRAM-SHA-512=[iterations=8192,password=dave-pw]")
    assert r.returncode == 0, r.stderr
    assert "SCRAM-SHA-512=iterations=8192" in cli("--describe", "--entity-name", "dave").stdout
    assert deliver(sasl_conf(s, "SCRAM-SHA-512", "dave", "dave-pw"), "cli-scram")[0] is None
    assert cli("--alter", "--entity-name", "dave", "--delete-config", "SCRAM-SHA-512").returncode == 0
    err, errors = deliver(sasl_conf(s, "SCRAM-SHA-512", "dave", "dave-pw"), "cli-scram", timeout=10)
    assert err is not None and any(e.code() == KafkaError._AUTHENTICATION for e in errors), errors
