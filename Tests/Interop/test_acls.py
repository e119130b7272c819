"""ACLs and SCRAM credentials over the Admin API, and what the authorizer enforces, with
confluent-kafka against the real broker. Without SASL every client is User:ANONYMOUS, so the
tests grant or deny that principal (or User:*) and check what a client then may do."""
import subprocess

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation, AclPermissionType, AdminClient, NewTopic,
                                   ResourcePatternType, ResourceType, ScramCredentialInfo, ScramMechanism,
                                   UserScramCredentialDeletion, UserScramCredentialUpsertion)

from conftest import BINARY, wait_for

AUTHORIZER = ["authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer", "group.initial.rebalance.delay.ms=0"]
OPEN = AUTHORIZER + ["allow.everyone.if.no.acl.found=true"]
ANON = "User:ANONYMOUS"


def admin(s):
    return AdminClient({"bootstrap.servers": s.bootstrap})


def acl(name, op, permission=AclPermissionType.ALLOW, principal=ANON, pattern=ResourcePatternType.LITERAL, rtype=ResourceType.TOPIC):
    return AclBinding(rtype, name, pattern, principal, "*", op, permission)


def create_acls(s, bindings):
    a = admin(s)
    for f in a.create_acls(bindings, request_timeout=15).values():
        f.result(15)


def describe(s, flt):
    a = admin(s)  # kept alive until the future is done
    return a.describe_acls(flt, request_timeout=15).result(15)


ANY = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None, AclOperation.ANY, AclPermissionType.ANY)


def produce_error(s, topic, timeout=15):
    """The delivery error of one record to `topic` (None when it was stored)."""
    p = Producer({"bootstrap.servers": s.bootstrap, "message.timeout.ms": 10000})
    result = []
    p.produce(topic, b"v", on_delivery=lambda err, msg: result.append(err))
    p.flush(timeout)
    assert result, "no delivery report"
    return result[0]


def test_acl_apis_need_an_authorizer(make_sluice):
    s = make_sluice().start()
    with pytest.raises(KafkaException) as e:
        create_acls(s, [acl("t", AclOperation.READ)])
    assert e.value.args[0].code() == KafkaError.SECURITY_DISABLED


def test_create_describe_delete_and_restart(make_sluice):
    s = make_sluice(OPEN).start()
    literal = acl("orders", AclOperation.READ, principal="User:alice")
    prefixed = acl("ord", AclOperation.WRITE, principal="User:bob", pattern=ResourcePatternType.PREFIXED)
    group = acl("g1", AclOperation.READ, principal="User:alice", rtype=ResourceType.GROUP)
    create_acls(s, [literal, prefixed, group])
    create_acls(s, [literal])  # an identical binding is stored once
    assert sorted(map(str, describe(s, ANY))) == sorted(map(str, [literal, prefixed, group]))
    # MATCH: every binding that applies to topic "orders".
    match = AclBindingFilter(ResourceType.TOPIC, "orders", ResourcePatternType.MATCH, None, None, AclOperation.ANY, AclPermissionType.ANY)
    assert sorted(map(str, describe(s, match))) == sorted(map(str, [literal, prefixed]))
    # An invalid binding is refused on its own, the others of the request are stored.
    bad = AclBinding(ResourceType.GROUP, "g", ResourcePatternType.LITERAL, "User:x", "*", AclOperation.WRITE, AclPermissionType.ALLOW)
    a = admin(s)
    futures = a.create_acls([bad, acl("other", AclOperation.READ)], request_timeout=15)
    with pytest.raises(KafkaException) as e:
        futures[bad].result(15)
    assert e.value.args[0].code() == KafkaError.INVALID_REQUEST
    s.restart()
    assert len(describe(s, ANY)) == 4
    by_user = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, "User:alice", None, AclOperation.ANY, AclPermissionType.ANY)
    a = admin(s)
    deleted = a.delete_acls([by_user], request_timeout=15)[by_user].result(15)
    assert sorted(map(str, deleted)) == sorted(map(str, [literal, group]))
    s.restart()
    assert sorted(map(str, describe(s, ANY))) == sorted(map(str, [prefixed, acl("other", AclOperation.READ)]))


def test_deny_hides_a_topic_and_refuses_its_records(make_sluice):
    s = make_sluice(OPEN).start()
    a = admin(s)
    for f in a.create_topics([NewTopic("secret", 1, 1), NewTopic("open", 1, 1)]).values():
        f.result(15)
    assert produce_error(s, "secret") is None
    create_acls(s, [acl("secret", AclOperation.ALL, AclPermissionType.DENY)])
    assert produce_error(s, "secret").code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert produce_error(s, "open") is None
    topics = admin(s).list_topics(timeout=10).topics
    assert "open" in topics and "secret" not in topics
    c = Consumer({"bootstrap.servers": s.bootstrap, "group.id": "g", "auto.offset.reset": "earliest"})
    c.subscribe(["secret"])
    try:
        def refused():
            m = c.poll(0.5)
            return m is not None and m.error() and m.error().code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
        wait_for(refused, timeout=30, what="TOPIC_AUTHORIZATION_FAILED for the consumer")
    finally:
        c.close()


def test_deny_beats_allow_and_group_acls(make_sluice):
    s = make_sluice(OPEN).start()
    a = admin(s)
    for f in a.create_topics([NewTopic("t", 1, 1)]).values():
        f.result(15)
    assert produce_error(s, "t") is None
    create_acls(s, [acl("t", AclOperation.ALL, principal="User:*"), acl("t", AclOperation.WRITE, AclPermissionType.DENY),
                    acl("blocked", AclOperation.READ, AclPermissionType.DENY, rtype=ResourceType.GROUP)])
    assert produce_error(s, "t").code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    c = Consumer({"bootstrap.servers": s.bootstrap, "group.id": "blocked", "auto.offset.reset": "earliest"})
    c.subscribe(["t"])
    try:
        def refused():
            m = c.poll(0.5)
            return m is not None and m.error() and m.error().code() == KafkaError.GROUP_AUTHORIZATION_FAILED
        wait_for(refused, timeout=30, what="GROUP_AUTHORIZATION_FAILED")
    finally:
        c.close()
    # The ALLOW still lets the same principal read the topic in another group.
    c = Consumer({"bootstrap.servers": s.bootstrap, "group.id": "fine", "auto.offset.reset": "earliest"})
    c.subscribe(["t"])
    try:
        def record():
            m = c.poll(0.5)
            return m is not None and not m.error() and m.value() == b"v"
        wait_for(record, timeout=30, what="the record through the ALLOW")
    finally:
        c.close()


def test_prefixed_allow_with_everyone_denied(make_sluice):
    """allow.everyone.if.no.acl.found=false: only what an ACL grants. The ACLs are made while the
    broker is open, then it restarts closed (every client is User:ANONYMOUS without SASL)."""
    s = make_sluice(OPEN).start()
    a = admin(s)
    for f in a.create_topics([NewTopic("payments", 1, 1)]).values():
        f.result(15)
    create_acls(s, [acl("kafka-cluster", AclOperation.ALL, rtype=ResourceType.BROKER),
                    acl("orders-", AclOperation.WRITE, pattern=ResourcePatternType.PREFIXED)])
    s.stop()
    s.overrides = AUTHORIZER + ["allow.everyone.if.no.acl.found=false"]
    s.start()
    assert produce_error(s, "orders-eu") is None  # auto-created: CREATE comes with ALL on the cluster
    assert produce_error(s, "payments").code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    topics = set(admin(s).list_topics(timeout=10).topics)
    assert "orders-eu" in topics and "payments" not in topics


def test_scram_credentials(make_sluice):
    s = make_sluice().start()
    a = admin(s)
    with pytest.raises(KafkaException) as e:
        a.describe_user_scram_credentials(["alice"], request_timeout=15)["alice"].result(15)
    assert e.value.args[0].code() == KafkaError.RESOURCE_NOT_FOUND
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 10000)
    a.alter_user_scram_credentials([UserScramCredentialUpsertion("alice", info, b"secret", b"salt")],
                                   request_timeout=15)["alice"].result(15)
    weak = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 100)
    with pytest.raises(KafkaException) as e:
        a.alter_user_scram_credentials([UserScramCredentialUpsertion("bob", weak, b"pw", b"salt")], request_timeout=15)["bob"].result(15)
    assert e.value.args[0].code() == KafkaError.UNACCEPTABLE_CREDENTIAL
    s.restart()
    a = admin(s)
    described = a.describe_user_scram_credentials(["alice"], request_timeout=15)["alice"].result(15)
    assert [(i.mechanism, i.iterations) for i in described.scram_credential_infos] == [(ScramMechanism.SCRAM_SHA_256, 10000)]
    a.alter_user_scram_credentials([UserScramCredentialDeletion("alice", ScramMechanism.SCRAM_SHA_256)],
                                   request_timeout=15)["alice"].result(15)
    with pytest.raises(KafkaException) as e:
        a.alter_user_scram_credentials([UserScramCredentialDeletion("alice", ScramMechanism.SCRAM_SHA_256)],
                                       request_timeout=15)["alice"].result(15)
    assert e.value.args[0].code() == KafkaError.RESOURCE_NOT_FOUND


def test_acls_cli_like_kafka_acls(make_sluice):
    """`sluice acls` takes kafka-acls.sh's flags: a DENY added with it refuses records, --list
    prints it as kafka-acls.sh does, --remove lifts it."""
    s = make_sluice(OPEN).start()

    def cli(*args):
        return subprocess.run([BINARY, "acls", "--bootstrap-server", s.bootstrap, *args], capture_output=True, text=True, timeout=30)

    assert produce_error(s, "guarded") is None
    r = cli("--add", "--deny-principal", "User:*", "--operation", "All", "--deny-host", "*", "--topic", "guarded")
    assert r.returncode == 0, r.stderr
    assert produce_error(s, "guarded").code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    r = cli("--add", "--allow-principal", "User:alice", "--producer", "--topic", "orders-", "--resource-pattern-type", "prefixed")
    assert r.returncode == 0, r.stderr
    listed = cli("--list").stdout
    assert "ResourcePattern(resourceType=TOPIC, name=guarded, patternType=LITERAL)" in listed
    assert "(principal=User:*, host=*, operation=ALL, permissionType=DENY)" in listed
    assert "(principal=User:alice, host=*, operation=CREATE, permissionType=ALLOW)" in listed
    assert cli("--remove", "--topic", "guarded", "--force").returncode == 0
    assert produce_error(s, "guarded") is None
    assert "guarded" not in cli("--list").stdout
