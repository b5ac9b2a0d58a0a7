"""Batches over HTTP, on both stores: an array of events for one migration (atomic), and
POST /v1/events:batch across migrations (a result per item)."""

from __future__ import annotations

from uuid import UUID

from eventsourcing.persistence import IntegrityError, OperationalError

from tests.api.conftest import ACCEPTED, CANCELLED, ORIGINAL, PROVISIONED, SEED

GUID = "6f1c2f4e-54a1-4d5c-9a53-0f3a9d2c7b11"
NOWHERE = "00000000-0000-0000-0000-000000000000"


def note(text: str, **extra: str) -> dict[str, str]:
    return {"type": "note_added", "text": text, **extra}


def stored(api, migration_id: str) -> list[str]:
    """The wire names of the migration's events in the store, in order."""
    return [type(e).TOPIC.rpartition(":")[2] for e in api.tracker.history(UUID(migration_id))]


def types(response) -> list[str]:
    assert response.status_code == 201, response.text
    return [e["type"] for e in response.json()["events"]]


def across(api, items: list[dict], who: str = "admin_a", **headers: str):
    return api.post(who, "/v1/events:batch", items, **headers)


class TestWhenPostingAnArrayOfEvents:
    def test_records_them_in_order_and_answers_every_stored_event(self, api):
        mid = api.new_migration()["id"]
        response = api.event(mid, [ORIGINAL, ACCEPTED, note("both recorded")])
        assert types(response) == [
            "original_subscription_recorded",
            "invitation_accepted",
            "note_added",
        ]
        body = response.json()
        assert [e["version"] for e in body["events"]] == [2, 3, 4]
        assert body["version"] == 4 and body["id"] == mid
        assert response.headers["ETag"] == "4"
        assert body["state"]["stage"] == "accepted"
        assert stored(api, mid)[1:] == types(response)

    def test_a_later_event_relies_on_an_earlier_one_of_the_same_batch(self, api):
        mid = api.new_migration()["id"]
        # Provisioning needs the acceptance and the original, both earlier in the batch.
        response = api.event(mid, [ORIGINAL, ACCEPTED, PROVISIONED])
        assert types(response)[-1] == "subscription_provisioned"
        assert response.json()["state"]["originals"][0]["replaced_by"] == ["csp-1"]

    def test_completion_inside_a_batch_is_recorded_where_it_happens(self, api):
        mid = api.new_migration()["id"]
        response = api.event(mid, [ORIGINAL, ACCEPTED, PROVISIONED, CANCELLED, note("after")])
        assert types(response) == [
            "original_subscription_recorded",
            "invitation_accepted",
            "subscription_provisioned",
            "original_subscription_cancelled",
            "migration_completed",
            "note_added",
        ]
        completed = response.json()["events"][4]
        assert completed["principal"] == "csp-tracker" and completed["role"] == "system"
        assert response.json()["state"]["stage"] == "completed"
        assert response.json()["version"] == 7

    def test_an_event_after_completion_in_the_same_batch_is_refused_as_after_it(self, api):
        mid = api.new_migration()["id"]
        batch = [ORIGINAL, ACCEPTED, PROVISIONED, CANCELLED, {**ACCEPTED}]
        response = api.event(mid, batch)
        assert response.status_code == 409
        assert response.json()["error"] == "migration_closed"
        assert response.json()["details"]["index"] == 4
        assert stored(api, mid) == ["relationship_requested"]

    def test_each_event_keeps_its_own_business_time_and_the_request_context(self, api):
        mid = api.new_migration(occurred_at="2026-10-01T08:00:00Z")["id"]
        batch = [
            {**ORIGINAL, "occurred_at": "2026-10-02T09:00:00Z"},
            note("later", occurred_at="2026-10-03T10:00:00+02:00"),
            note("now"),
        ]
        response = api.event(mid, batch, **{"X-Correlation-ID": "sync-7"})
        events = response.json()["events"]
        assert events[0]["occurred_at"].startswith("2026-10-02T09:00:00")
        assert events[1]["occurred_at"].startswith("2026-10-03T10:00:00")
        assert events[2]["occurred_at"] == events[2]["recorded_at"]
        assert {e["principal"] for e in events} == {"admin-a"}
        assert {e["role"] for e in events} == {"account_admin"}
        assert {e["correlation_id"] for e in events} == {"sync-7"}

    def test_stream_links_and_the_ledger_verify_after_batches(self, api):
        mid = api.new_migration()["id"]
        assert api.event(mid, [ORIGINAL, ACCEPTED]).status_code == 201
        assert api.event(mid, [PROVISIONED, CANCELLED, note("tail")]).status_code == 201
        assert api.event(mid, note("single")).status_code == 201
        api.settle()
        api.client.app.state.read_side.issue_head(force=True)
        verified = api.get("auditor", "/v1/audit/verify").json()
        assert verified["ok"] is True, verified
        assert verified["events_verified"] == verified["events_in_store"]


class TestWhenAnEventOfTheArrayIsRefused:
    def test_a_refusal_at_index_3_of_5_stores_nothing_and_names_the_index(self, api):
        mid = api.new_migration()["id"]
        batch = [ORIGINAL, ACCEPTED, note("fine"), ACCEPTED, note("never")]
        response = api.event(mid, batch)
        assert response.status_code == 409
        body = response.json()
        assert set(body) == {"error", "message", "details"}
        assert body["error"] == "already_accepted"
        assert body["details"]["index"] == 3
        assert body["message"].startswith("event 3 of the batch: ")
        assert stored(api, mid) == ["relationship_requested"]
        assert api.get("admin_a", f"/v1/migrations/{mid}").headers["ETag"] == "1"

    def test_a_rule_refusal_keeps_its_status_and_details(self, api):
        mid = api.new_migration()["id"]
        response = api.event(mid, [note("first"), ORIGINAL, PROVISIONED])
        assert response.status_code == 422
        assert response.json()["error"] == "not_accepted"
        assert response.json()["details"]["index"] == 2
        assert stored(api, mid) == ["relationship_requested"]

    def test_a_role_refusal_is_403_with_its_index(self, api):
        mid = api.new_migration()["id"]
        response = api.event(mid, [note("ok"), ORIGINAL], who="billing_a")
        assert response.status_code == 403
        assert response.json()["error"] == "role_not_permitted"
        assert response.json()["details"]["index"] == 1

    def test_a_malformed_event_is_422_naming_its_index_in_loc(self, api):
        mid = api.new_migration()["id"]
        response = api.event(mid, [note("ok"), note("ok"), {"type": "note_added", "text": ""}])
        assert response.status_code == 422
        body = response.json()
        assert body["error"] == "validation_error"
        assert body["details"]["errors"][0]["loc"] == ["body", 2, "note_added", "text"]
        assert stored(api, mid) == ["relationship_requested"]

    def test_an_id_replaced_twice_is_refused_with_the_domains_code_and_its_index(self, api):
        mid = api.new_migration()["id"]
        twice = {**PROVISIONED, "replaces": ["orig-1", "orig-1"]}
        response = api.event(mid, [ORIGINAL, ACCEPTED, twice])
        assert response.status_code == 422
        body = response.json()
        assert body["error"] == "invalid_replaces"
        assert body["details"] == {"index": 2, "field": "replaces"}
        assert stored(api, mid) == ["relationship_requested"]

    def test_a_single_event_replacing_an_id_twice_gets_the_domains_answer_as_before(self, api):
        # The wire check answers as the domain's own check (domain.fields.subscription_ids)
        # did, which this state reaches; it now also answers before the state's rules.
        mid = api.new_migration()["id"]
        api.event(mid, [ORIGINAL, ACCEPTED])
        response = api.event(mid, {**PROVISIONED, "replaces": ["orig-1", "orig-1"]})
        assert response.status_code == 422
        assert response.json() == {
            "error": "invalid_replaces",
            "message": "replaces lists an id twice",
            "details": {"field": "replaces"},
        }

    def test_a_single_malformed_event_keeps_the_loc_it_always_had(self, api):
        mid = api.new_migration()["id"]
        response = api.event(mid, {**ORIGINAL, "licenses": "25"})
        assert response.status_code == 422
        loc = response.json()["details"]["errors"][0]["loc"]
        assert loc == ["body", "original_subscription_recorded", "licenses"]

    def test_101_events_are_refused_and_nothing_is_stored(self, api):
        mid = api.new_migration()["id"]
        response = api.event(mid, [note(f"n{i}") for i in range(101)])
        assert response.status_code == 422
        assert response.json()["error"] == "validation_error"
        assert response.json()["details"]["errors"][0]["type"] == "too_long"
        assert stored(api, mid) == ["relationship_requested"]

    def test_100_events_are_accepted(self, api):
        mid = api.new_migration()["id"]
        response = api.event(mid, [note(f"n{i}") for i in range(100)])
        assert response.status_code == 201
        assert response.json()["version"] == 101

    def test_an_empty_array_is_refused(self, api):
        mid = api.new_migration()["id"]
        response = api.event(mid, [])
        assert response.status_code == 422
        assert response.json()["details"]["errors"][0]["type"] == "too_short"

    def test_an_auditor_may_not_post_a_batch(self, api):
        mid = api.new_migration()["id"]
        response = api.event(mid, [note("x")], who="auditor")
        assert response.status_code == 403
        assert response.json()["error"] == "read_only"

    def test_another_partners_migration_is_not_found(self, api):
        theirs = api.new_migration(who="admin_b")["id"]
        response = api.event(theirs, [note("x"), note("y")], **{"If-Match": "7"})
        assert response.status_code == 404
        assert response.json()["error"] == "migration_not_found"
        assert "index" not in response.json()["details"]


class TestTenantClaimsInABatch:
    def test_a_guid_claimed_and_freed_in_one_batch_is_free_afterwards(self, api):
        mid = api.new_migration()["id"]
        batch = [
            {"type": "tenant_identified", "tenant_guid": GUID},
            {"type": "migration_abandoned", "reason": "went elsewhere"},
        ]
        assert types(api.event(mid, batch)) == ["tenant_identified", "migration_abandoned"]
        again = api.post("sales_a", "/v1/migrations", {**SEED, "tenant_guid": GUID})
        assert again.status_code == 201, again.text

    def test_a_guid_held_by_another_open_migration_refuses_its_event_by_index(self, api):
        api.new_migration(tenant_guid=GUID)
        mid = api.new_migration(tenant_id="contoso-two.com")["id"]
        batch = [note("ok"), {"type": "tenant_identified", "tenant_guid": GUID}, note("never")]
        response = api.event(mid, batch)
        assert response.status_code == 409
        assert response.json()["error"] == "migration_open"
        assert response.json()["details"]["index"] == 1
        assert stored(api, mid) == ["relationship_requested"]


class TestIfMatchAndIdempotencyForAnArray:
    def test_if_match_is_the_version_before_the_batch(self, api):
        mid = api.new_migration()["id"]
        response = api.event(mid, [ORIGINAL, ACCEPTED], **{"If-Match": '"1"'})
        assert response.status_code == 201
        assert response.headers["ETag"] == "3"
        stale = api.event(mid, [note("a"), note("b")], **{"If-Match": "1"})
        assert stale.status_code == 412
        assert stale.json()["details"] == {"expected": 1, "actual": 3}
        assert len(stored(api, mid)) == 3

    def test_a_retry_with_the_key_replays_the_whole_batch(self, api):
        mid = api.new_migration()["id"]
        headers = {"Idempotency-Key": "sync-42", "If-Match": "1"}
        first = api.event(mid, [ORIGINAL, ACCEPTED, note("x")], **headers)
        assert first.status_code == 201
        again = api.event(mid, [ORIGINAL, ACCEPTED, note("x")], **headers)
        assert again.status_code == 201
        assert again.json() == first.json()
        assert again.headers["Idempotent-Replayed"] == "true"
        assert again.headers["ETag"] == "4"
        assert len(stored(api, mid)) == 4

    def test_the_key_with_another_batch_or_a_single_event_is_422(self, api):
        mid = api.new_migration()["id"]
        api.event(mid, [note("a"), note("b")], **{"Idempotency-Key": "k"})
        for other in ([note("a")], [note("a"), note("c")], note("a")):
            response = api.event(mid, other, **{"Idempotency-Key": "k"})
            assert response.status_code == 422
            assert response.json()["error"] == "idempotency_key_reused"
        assert len(stored(api, mid)) == 3

    def test_a_refused_batch_keeps_no_record_and_may_be_retried_once_fixed(self, api):
        mid = api.new_migration()["id"]
        headers = {"Idempotency-Key": "fix-me"}
        assert api.event(mid, [ORIGINAL, PROVISIONED], **headers).status_code == 422
        api.event(mid, ACCEPTED)
        assert types(api.event(mid, [ORIGINAL, PROVISIONED], **headers))[-1] == (
            "subscription_provisioned"
        )


class TestTheBodyLimit:
    def test_100_notes_of_4000_characters_fit_under_the_default_limit(self, api):
        mid = api.new_migration()["id"]
        batch = [note(f"{i:03d}" + "x" * 3997) for i in range(100)]
        response = api.event(mid, batch)
        assert response.status_code == 201, response.text[:200]
        assert len(response.request.content) < 1_048_576

    def test_a_batch_over_the_limit_is_413(self, api):
        mid = api.new_migration()["id"]
        # Texts of 4000 three-byte characters: 100 of them are ~1.2 MB.
        batch = [note("€" * 4000) for _ in range(100)]
        response = api.event(mid, batch)
        assert response.status_code == 413
        assert response.json()["error"] == "body_too_large"
        assert stored(api, mid) == ["relationship_requested"]


class TestWhenPostingEventsAcrossMigrations:
    def test_each_item_gets_its_own_result_in_order(self, api):
        one = api.new_migration()["id"]
        two = api.new_migration(tenant_id="fabrikam-two.com")["id"]
        api.event(one, ORIGINAL)
        response = across(
            api,
            [
                {"migration_id": one, "event": ACCEPTED},
                {"migration_id": two, "event": PROVISIONED},  # not accepted: refused
                {"migration_id": one, "event": PROVISIONED},  # relies on item 0
                {"migration_id": NOWHERE, "event": note("lost")},
                {"migration_id": one, "event": CANCELLED},
            ],
        )
        assert response.status_code == 200
        items = response.json()["items"]
        assert [i["index"] for i in items] == [0, 1, 2, 3, 4]
        assert [i["status"] for i in items] == [201, 422, 201, 404, 201]
        assert items[0]["id"] == one and items[0]["version"] == 3
        assert items[0]["replayed"] is False
        assert [e["type"] for e in items[0]["events"]] == ["invitation_accepted"]
        assert set(items[1]) == {"index", "status", "error", "message", "details"}
        assert items[1]["error"] == "not_accepted"
        assert items[3]["error"] == "migration_not_found"
        assert [e["type"] for e in items[4]["events"]] == [
            "original_subscription_cancelled",
            "migration_completed",
        ]
        assert items[4]["version"] == 6
        assert len(stored(api, one)) == 6
        assert stored(api, two) == ["relationship_requested"]

    def test_another_partners_migration_is_not_found_per_item(self, api):
        ours = api.new_migration()["id"]
        theirs = api.new_migration(who="admin_b")["id"]
        items = across(
            api,
            [
                {"migration_id": theirs, "event": note("peek")},
                {"migration_id": ours, "event": note("mine")},
            ],
        ).json()["items"]
        assert [(i["status"], i.get("error")) for i in items] == [
            (404, "migration_not_found"),
            (201, None),
        ]
        assert stored(api, theirs) == ["relationship_requested"]

    def test_a_role_refusal_is_per_item(self, api):
        mid = api.new_migration()["id"]
        items = across(
            api,
            [
                {"migration_id": mid, "event": ORIGINAL},
                {"migration_id": mid, "event": note("billing may note")},
            ],
            who="billing_a",
        ).json()["items"]
        assert [(i["status"], i.get("error")) for i in items] == [
            (403, "role_not_permitted"),
            (201, None),
        ]

    def test_per_item_idempotency_keys_replay_and_refuse_another_body(self, api):
        one = api.new_migration()["id"]
        two = api.new_migration(tenant_id="fabrikam-two.com")["id"]
        items = [
            {"migration_id": one, "event": note("a"), "idempotency_key": "ext-1"},
            {"migration_id": two, "event": note("b"), "idempotency_key": "ext-2"},
            {"migration_id": two, "event": note("c")},
        ]
        first = across(api, items).json()["items"]
        again = across(api, items).json()["items"]
        assert [i["replayed"] for i in again] == [True, True, False]
        # The keyless item is a new request each time: its note is stored twice.
        assert [i["version"] for i in first] == [2, 2, 3]
        assert [i["version"] for i in again] == [2, 2, 4]
        for before, after in zip(first[:2], again[:2], strict=True):
            assert {**before, "replayed": True} == after
        assert len(stored(api, one)) == 2 and len(stored(api, two)) == 4

        reused = {"migration_id": one, "event": note("z"), "idempotency_key": "ext-1"}
        item = across(api, [reused]).json()["items"][0]
        assert (item["status"], item["error"]) == (422, "idempotency_key_reused")
        assert len(stored(api, one)) == 2

    def test_an_item_key_is_the_same_request_as_the_single_post_with_that_key(self, api):
        mid = api.new_migration()["id"]
        across(api, [{"migration_id": mid, "event": note("a"), "idempotency_key": "same"}])
        single = api.event(mid, note("a"), **{"Idempotency-Key": "same"})
        assert single.status_code == 201
        assert single.headers["Idempotent-Replayed"] == "true"
        assert single.json()["version"] == 2 and "state" in single.json()
        api.event(mid, note("b"), **{"Idempotency-Key": "first-single"})
        item = {"migration_id": mid, "event": note("b"), "idempotency_key": "first-single"}
        replayed = across(api, [item]).json()["items"][0]
        assert (replayed["replayed"], replayed["version"]) == (True, 3)
        assert len(stored(api, mid)) == 3

    def test_an_auditor_is_refused(self, api):
        mid = api.new_migration()["id"]
        response = across(api, [{"migration_id": mid, "event": note("x")}], who="auditor")
        assert response.status_code == 403
        assert response.json()["error"] == "read_only"
        assert stored(api, mid) == ["relationship_requested"]

    def test_101_items_are_refused_and_nothing_is_stored(self, api):
        mid = api.new_migration()["id"]
        response = across(api, [{"migration_id": mid, "event": note("x")}] * 101)
        assert response.status_code == 422
        assert response.json()["error"] == "validation_error"
        assert stored(api, mid) == ["relationship_requested"]

    def test_a_malformed_item_refuses_the_whole_request(self, api):
        mid = api.new_migration()["id"]
        response = across(
            api,
            [
                {"migration_id": mid, "event": note("fine")},
                {"migration_id": mid, "event": note("fine"), "if_match": "1"},
            ],
        )
        assert response.status_code == 422
        error = response.json()["details"]["errors"][0]
        assert error["loc"] == ["body", 1, "if_match"]
        assert stored(api, mid) == ["relationship_requested"]

    def test_an_item_the_schema_forbids_refuses_the_whole_request_by_index(self, api):
        mid = api.new_migration()["id"]
        twice = {**PROVISIONED, "replaces": ["orig-1", "orig-1"]}
        response = across(
            api,
            [{"migration_id": mid, "event": note("fine")}, {"migration_id": mid, "event": twice}],
        )
        assert response.status_code == 422
        assert response.json()["details"] == {"index": 1, "field": "replaces"}
        assert stored(api, mid) == ["relationship_requested"]

    def test_strict_types_per_item(self, api):
        mid = api.new_migration()["id"]
        response = across(
            api,
            [{"migration_id": mid, "event": note("x"), "idempotency_key": 7}],
        )
        assert response.status_code == 422
        assert response.json()["details"]["errors"][0]["loc"] == ["body", 0, "idempotency_key"]


class TestItemsThatDependOnEachOther:
    """Across migrations, each item is decided as if it were posted alone, in order, though
    all are stored in one transaction."""

    def test_a_key_sent_twice_in_one_request_stores_once_and_replays(self, api):
        mid = api.new_migration()["id"]
        item = {"migration_id": mid, "event": note("once"), "idempotency_key": "twice"}
        other = {**item, "event": note("another")}
        items = across(api, [item, item, other]).json()["items"]
        assert [(i["status"], i.get("replayed")) for i in items] == [
            (201, False),
            (201, True),
            (422, None),
        ]
        assert items[1]["version"] == items[0]["version"] == 2
        assert items[2]["error"] == "idempotency_key_reused"
        assert stored(api, mid) == ["relationship_requested", "note_added"]

    def test_a_guid_freed_by_an_earlier_item_may_be_claimed_by_a_later_one(self, api):
        one = api.new_migration(tenant_guid=GUID)["id"]
        two = api.new_migration(tenant_id="contoso-two.com")["id"]
        identify = {"type": "tenant_identified", "tenant_guid": GUID}
        abandon = {"type": "migration_abandoned", "reason": "moved"}
        items = across(
            api,
            [
                {"migration_id": two, "event": identify},  # still held by `one`: refused
                {"migration_id": one, "event": abandon},
                {"migration_id": two, "event": identify},  # freed by item 1
            ],
        ).json()["items"]
        assert [(i["status"], i.get("error")) for i in items] == [
            (409, "migration_open"),
            (201, None),
            (201, None),
        ]
        assert stored(api, two) == ["relationship_requested", "tenant_identified"]
        again = api.post("sales_a", "/v1/migrations", {**SEED, "tenant_guid": GUID})
        assert again.status_code == 409
        assert again.json()["details"]["migration_id"] == two

    def test_a_refused_item_leaves_nothing_behind_for_the_next_one(self, api):
        api.new_migration(tenant_guid=GUID)
        mid = api.new_migration(tenant_id="contoso-two.com")["id"]
        items = across(
            api,
            [
                {"migration_id": mid, "event": note("before")},
                # Refused by its claim, after its event was decided: undone.
                {"migration_id": mid, "event": {"type": "tenant_identified", "tenant_guid": GUID}},
                {"migration_id": mid, "event": note("after")},
            ],
        ).json()["items"]
        assert [i["status"] for i in items] == [201, 409, 201]
        assert items[2]["version"] == 3
        assert [e["type"] for e in items[2]["events"]] == ["note_added"]
        assert stored(api, mid) == ["relationship_requested", "note_added", "note_added"]

    def test_every_item_refused_stores_nothing(self, api):
        mid = api.new_migration()["id"]
        items = across(api, [{"migration_id": mid, "event": PROVISIONED}] * 3).json()["items"]
        assert {i["status"] for i in items} == {422}
        assert stored(api, mid) == ["relationship_requested"]

    def test_completion_is_recorded_by_the_item_that_completes(self, api):
        mid = api.new_migration()["id"]
        events = [ORIGINAL, ACCEPTED, PROVISIONED, CANCELLED, note("tail")]
        items = across(api, [{"migration_id": mid, "event": e} for e in events]).json()["items"]
        assert [i["version"] for i in items] == [2, 3, 4, 6, 7]
        assert [e["type"] for e in items[3]["events"]] == [
            "original_subscription_cancelled",
            "migration_completed",
        ]
        api.settle()
        api.client.app.state.read_side.issue_head(force=True)
        assert api.get("auditor", "/v1/audit/verify").json()["ok"] is True


class TestWhenTheStoreFailsMidway:
    def test_items_stored_before_the_failure_keep_their_results(self, api, monkeypatch):
        # Given a batch whose combined save collides (another writer), so that its items are
        # then recorded one by one: when the store fails at the second, then the first keeps
        # its 201 and the others are each a 503 result, not stored.
        one = api.new_migration()["id"]
        two = api.new_migration(tenant_id="fabrikam-two.com")["id"]
        real_save, real_execute, saves, calls = api.tracker.save, api.tracker.execute, [], []

        def colliding(*args, **kwargs):
            saves.append(1)
            if len(saves) == 1:  # the combined save
                raise IntegrityError("another writer saved first")
            return real_save(*args, **kwargs)

        def flaky(*args, **kwargs):
            calls.append(1)
            if len(calls) == 2:
                raise OperationalError("the store went away")
            return real_execute(*args, **kwargs)

        monkeypatch.setattr(api.tracker, "save", colliding)
        monkeypatch.setattr(api.tracker, "execute", flaky)
        items = [{"migration_id": m, "event": note("plain")} for m in (one, two, two)]
        response = across(api, items)
        assert response.status_code == 200
        results = response.json()["items"]
        assert [r["status"] for r in results] == [201, 503, 503]
        assert results[1]["error"] == "store_unavailable"
        assert stored(api, one) == ["relationship_requested", "note_added"]
        assert stored(api, two) == ["relationship_requested"]

    def test_a_store_failure_before_anything_is_stored_is_a_503(self, api, monkeypatch):
        one = api.new_migration()["id"]

        def down(*args, **kwargs):
            raise OperationalError("the store went away")

        monkeypatch.setattr(api.tracker, "execute_each", down)
        response = across(api, [{"migration_id": one, "event": note("plain")}])
        assert response.status_code == 503
        assert response.json()["error"] == "store_unavailable"
