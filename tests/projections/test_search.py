"""`?q=`: the text search over the migrations view, backed by a trigram index on both stores.

The semantics users rely on: the customer name, tenant domain or migration id *contains* the
text, in any case (Python's str.lower() on both sides); `\\`, `%` and `_` in the text are
ignored. The reference below is that sentence in Python, compared with the store's answers.
"""

from __future__ import annotations

import logging
import random

import pytest

from domain.application import Tracker
from projections import ReadSide, rows
from projections.schema import SCHEMA_VERSION
from projections.views import PostgresViews, SQLiteViews, trigram_available
from tests.factories import ADMIN, record
from tests.projections.conftest import NOW, request

AWKWARD = {
    "quote": ('O\'Brien "Quoted" Ltd', "obrien.onmicrosoft.com"),
    "percent": ("100% Pure_Water", "pure.onmicrosoft.com"),
    "backslash": ("Back\\Slash GmbH", "back.onmicrosoft.com"),
    "nordic": ("Ålborg Ä", "aalborg.onmicrosoft.com"),
    "german": ("Straße & Söhne", "strasse.onmicrosoft.com"),
    "plain": ("Contoso Ltd", "contoso.onmicrosoft.com"),
}


def ids_of(items: list[dict]) -> list[str]:
    return [m["id"] for m in items]


def search(read_side: ReadSide, text: str, limit: int = 500, **filters) -> list[str]:
    """Every match, following the cursor page by page."""
    out, cursor = [], None
    while True:
        page, cursor = read_side.queries.list_migrations(
            now=NOW, text=text, limit=limit, cursor=cursor, **filters
        )
        out += ids_of(page)
        if cursor is None:
            return out


def reference(migrations: dict[str, tuple[str, str]], text: str) -> list[str]:
    """The documented semantics, in Python: sorted ids whose name, tenant or id contains it."""
    needle = text.lower().replace("\\", "").replace("%", "").replace("_", "")
    return sorted(
        mid
        for mid, (name, tenant) in migrations.items()
        if needle in name.lower() or needle in tenant.lower() or needle in mid.lower()
    )


@pytest.fixture
def awkward(app, read_side) -> dict[str, str]:
    made = {key: str(request(app, tenant, name=name)) for key, (name, tenant) in AWKWARD.items()}
    read_side.catch_up()
    return made


class TestGivenCustomersWithAwkwardNames:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ('"quoted"', {"quote"}),  # FTS5 phrase quotes, doubled
            ("o'brien", {"quote"}),
            ('"', {"quote"}),  # one character: the scan
            ("100% pure", set()),  # % ignored: "100 pure" is not in "100% pure_water"
            ("100", {"percent"}),
            ("pure_water", set()),  # _ ignored: "purewater"
            ("back\\slash", set()),  # \\ ignored: "backslash" is not in "back\\slash"
            ("k\\s", set()),
            ("ålborg", {"nordic"}),
            ("ÅLBORG Ä", {"nordic"}),  # non-ASCII folded (SQLite's own lower() would not)
            ("ä", {"nordic"}),
            ("borg ä", {"nordic"}),
            ("SÖHNE", {"german"}),
            ("straße", {"german"}),
            ("strasse", {"german"}),  # the tenant
            ("& s", {"german"}),
            ("ltd", {"quote", "plain"}),
            ("lt", {"quote", "plain"}),
            ("onmicrosoft.com", set(AWKWARD)),
            ("zz", set()),
            ("zzz", set()),
        ],
    )
    def test_matches_the_text_anywhere_in_any_case(self, read_side, awkward, text, expected):
        found = search(read_side, text)
        # The id is searched too: a random id may contain a text such as "100" by chance.
        by_id = {mid for mid in awkward.values() if text.lower() in mid}
        assert found == sorted({awkward[k] for k in expected} | by_id)

    @pytest.mark.parametrize("text", ["%", "_", "\\", "%_\\"])
    def test_a_text_of_ignored_characters_matches_everything(self, read_side, awkward, text):
        assert search(read_side, text) == sorted(awkward.values())

    @pytest.mark.parametrize("length", [2, 3, 8, 36])
    def test_matches_part_of_an_id_in_any_case(self, read_side, awkward, length):
        mid = awkward["plain"]
        found = search(read_side, mid[10 : 10 + length].upper())
        assert mid in found
        assert found == reference(
            {m: AWKWARD[k] for k, m in awkward.items()}, mid[10 : 10 + length]
        )

    def test_combines_with_the_other_filters(self, app, read_side, awkward):
        other = str(request(app, "elsewhere.onmicrosoft.com", "northwind", "Ålborg Nord"))
        accepted = request(app, "x.onmicrosoft.com", name="Ålborg Syd")
        record(app, "invitation_accepted", accepted, ADMIN, accepted_by="ga@x.onmicrosoft.com")
        read_side.catch_up()
        every = sorted([awkward["nordic"], other, str(accepted)])
        assert search(read_side, "ålborg") == every
        assert search(read_side, "ålborg", partner_id="northwind") == [other]
        assert search(read_side, "ålborg", stage="accepted") == [str(accepted)]
        assert search(read_side, "ålborg", stage="accepted", partner_id="northwind") == []


def random_name(rng: random.Random) -> str:
    words = [
        "Ålborg",
        "Ä",
        "O'Brien",
        '"Q"',
        "100%",
        "Pure_Water",
        "Back\\Slash",
        "İzmir",
        "Contoso",
        "Ltd",
        "Straße",
        "ÉCOLE",
        "a",
        "ab",
        "Nordic Ltd",
        "x%y",
        "Søhne",
    ]
    return " ".join(rng.choice(words) for _ in range(rng.randint(1, 3)))


@pytest.fixture
def sample(app: Tracker, read_side: ReadSide) -> dict[str, tuple[str, str]]:
    """120 migrations with names drawn from awkward words: id -> (name, tenant)."""
    rng = random.Random(11)
    made = {}
    for i in range(120):
        name, tenant = random_name(rng), f"t{i}-{rng.choice(['ab', 'xy', 'nord'])}.example.com"
        made[str(request(app, tenant, name=name))] = (name, tenant)
    read_side.catch_up()
    return made


class TestGivenAGeneratedSample:
    def test_every_answer_equals_the_python_reference(self, read_side, sample):
        rng = random.Random(5)
        texts = [
            "a",
            "ä",
            "Ä",
            "'",
            '"',
            "%",
            "ab",
            "lt",
            "ltd",
            "LTD",
            "ålborg",
            'q"',
            '"q"',
            "100%",
            "0% p",
            "pure_water",
            "purewater",
            "back\\slash",
            "i\u0307zmir",
            "izmir",
            "İzmir",
            "straße",
            "ss",
            "nord",
            ".example",
            "-ab.",
            "zzz",
            "x%y",
            "xy",
        ]
        for mid, (name, tenant) in rng.sample(sorted(sample.items()), 15):
            for source in (name, tenant, mid):
                start = rng.randrange(len(source))
                texts.append(source[start : start + rng.randint(1, 6)])
        for text in texts:
            assert search(read_side, text) == reference(sample, text), text

    @pytest.mark.parametrize(
        "text", ["ltd", "a", "ålborg", "nord", "zzz", "t1", "t1-", ".example.com", "-ab.ex"]
    )
    @pytest.mark.parametrize("limit", [1, 2, 7])
    def test_small_pages_visit_every_match_once_in_id_order(self, read_side, sample, text, limit):
        # Small limits make SQLite's probe overflow (more than PROBE x limit candidates), so
        # both of its ways of answering are compared with the reference.
        assert search(read_side, text, limit=limit) == reference(sample, text)


def _explain(read_side: ReadSide, sql: str, params: list) -> str:
    view = read_side.view
    prefix = "EXPLAIN QUERY PLAN " if isinstance(view, SQLiteViews) else "EXPLAIN "
    with view.read() as c:
        if isinstance(view, PostgresViews):
            # The test table is tiny, so a walk of a whole table is cheaper: forbid those to
            # show that the index answers this shape of query (bench/search.py shows the plans
            # the planner picks at size).
            c.execute("SET LOCAL enable_seqscan = off")
            c.execute("SET LOCAL enable_indexscan = off")
        c.execute(view.sql(prefix + sql), params)
        return "\n".join(str(list(dict(r).values())[-1]) for r in c.fetchall())


class _Recording:
    """A cursor that notes the statements it runs."""

    def __init__(self, cursor, calls: list) -> None:
        self._cursor, self._calls = cursor, calls

    def execute(self, sql, params=()):
        self._calls.append((sql, params))
        return self._cursor.execute(sql, params)

    def __getattr__(self, name):
        return getattr(self._cursor, name)


class TestTheIndexIsUsed:
    def test_a_text_of_three_or_more_characters_is_answered_from_the_trigram_index(
        self, read_side, awkward
    ):
        view = read_side.view
        with view.read() as c:
            condition, params = view.text_condition(c, "ålborg", 100)
        if isinstance(view, SQLiteViews):
            sql, probe_params = view.search_probe("ålborg", 100)
            plan = _explain(read_side, sql, probe_params)
            assert "VIRTUAL TABLE INDEX" in plan and "M" in plan  # the FTS5 MATCH
            assert condition.startswith("id IN (SELECT value FROM json_each")
        else:
            plan = _explain(read_side, f"SELECT id FROM {{migrations}} WHERE {condition}", params)
            assert "Bitmap Index Scan on view_migration_search_trgm" in plan, plan

    @pytest.mark.parametrize(
        ("needle", "index"),
        [
            ("o ltd", "view_migration_search_words_pkey"),  # begins a word: a range of it
            ("contoso.", "view_migration_search_words_drow"),  # ends one: a range reversed
            (" contoso ", "view_migration_search_words_pkey"),  # a whole word
        ],
    )
    def test_a_text_with_a_rare_word_is_answered_from_the_words_on_postgres(
        self, read_side, awkward, needle, index
    ):
        view = read_side.view
        if not isinstance(view, PostgresViews):
            pytest.skip("SQLite's full-text index has no such case")
        calls = []
        with view.read() as c:
            condition, params = view.text_condition(_Recording(c, calls), needle, 100)
        assert condition == "id = ANY(?)"
        assert params == [[awkward["plain"]] if needle != " contoso " else []]
        (probe, probe_params), (candidates, _) = calls  # the word's rows, then their texts
        assert 'view_migration_search_words"' in probe
        assert 'view_migration_search" WHERE id = ANY' in candidates
        plan = _explain(read_side, probe.replace("%s", "?"), probe_params)
        assert index in plan, plan

    def test_only_common_words_leave_it_to_the_trigram_index_on_postgres(self, read_side, awkward):
        view = read_side.view
        if not isinstance(view, PostgresViews):
            pytest.skip("PostgreSQL")
        with view.read() as c:  # a cap of 0 rows: every word is too common
            condition, _ = view.text_condition(c, ".onmicrosoft.com", limit=0)
        assert "LIKE" in condition

    def test_a_shorter_text_scans_the_search_table_on_sqlite(self, read_side, awkward):
        view = read_side.view
        if not isinstance(view, SQLiteViews):
            pytest.skip("PostgreSQL runs one statement and its planner chooses")
        sql, params = view.search_probe("ä", 100)
        plan = _explain(read_side, sql, params)
        assert "SCAN view_migration_search" in plan, plan


class TestTheIndexStaysInStep:
    def test_rows_and_index_roll_back_with_a_failed_batch(self, app, read_side, monkeypatch):
        from projections.projector import ReadModelProjection

        request(app, "ok.onmicrosoft.com", name="Ålborg Ä")

        def fail(*args, **kwargs):
            raise RuntimeError("crash after the search rows were written")

        monkeypatch.setattr(ReadModelProjection, "_summary", fail)
        with pytest.raises(RuntimeError):
            read_side.catch_up()
        assert read_side.runner.position() == 0
        assert search(read_side, "ålborg") == []
        assert read_side.view.fetch("SELECT COUNT(*) AS n FROM {migration_search}")[0]["n"] == 0
        monkeypatch.undo()
        read_side.catch_up()
        assert len(search(read_side, "ålborg")) == 1
        assert_index_matches_table(read_side)

    def test_rebuilds_keep_it(self, app, read_side, sample):
        for view in ("migrations", None):
            read_side.rebuild(view)
            assert search(read_side, "ålborg") == reference(sample, "ålborg")
            assert_index_matches_table(read_side)

    def test_a_change_of_name_replaces_the_indexed_text(self, app, read_side, awkward):
        # No event renames a customer today; the projector still keeps the index right if a
        # state's name changes (here: through write_search, as the projector would call it).
        mid = awkward["nordic"]
        with read_side.view.write() as c:
            c.execute(
                read_side.view.sql("UPDATE {migrations} SET customer_name = ? WHERE id = ?"),
                ("Odense", mid),
            )
            read_side.view.write_search(c, [], [(mid, "odense", "odense.onmicrosoft.com")])
        assert search(read_side, "odense") == [mid]
        assert search(read_side, "ålborg") == []
        assert_index_matches_table(read_side)


def assert_index_matches_table(read_side: ReadSide) -> None:
    """SQLite: FTS5's own check of the index against its content table. PostgreSQL: the
    words table holds exactly the words of the search table."""
    view = read_side.view
    if isinstance(view, PostgresViews):
        table = view.fetch("SELECT id, customer_name, tenant_id FROM {migration_search}")
        expected = sorted(
            (w, w[::-1], r["id"])
            for r in table
            for w in rows.search_words(r["id"], r["customer_name"], r["tenant_id"])
        )
        found = view.fetch("SELECT word, drow, id FROM {migration_search_words}")
        assert sorted(tuple(r.values()) for r in found) == expected
        assert expected or not table
    if isinstance(view, SQLiteViews) and trigram_available():
        with view.write() as c:
            c.execute(
                view.sql(
                    "INSERT INTO {migration_search_fts} ({migration_search_fts}, rank) "
                    "VALUES ('integrity-check', 1)"
                )
            )


class TestGivenViewsOfTheLayoutBeforeSearch:
    """Layout 3 is layout 4 without the search table: an upgrade adds it in place."""

    def test_the_upgrade_fills_the_index_without_reprojecting(
        self, app, read_side, sample, store_env
    ):
        rebuilt = read_side.view.dump(app.name)
        position = read_side.runner.position()
        with read_side.view.write() as c:
            if isinstance(read_side.view, SQLiteViews):
                c.execute(read_side.view.sql("DROP TABLE {migration_search_fts}"))
            else:  # layout 3 had no words table either
                c.execute(read_side.view.sql("DROP TABLE {migration_search_words}"))
            c.execute(read_side.view.sql("DROP TABLE {migration_search}"))
            c.execute(read_side.view.sql("UPDATE {schema} SET version = 3"))
        read_side.close()

        upgraded = ReadSide(app, store_env)
        try:
            assert upgraded.view.fetch("SELECT version FROM {schema}")[0]["version"] == (
                SCHEMA_VERSION
            )
            assert upgraded.runner.position() == position  # nothing re-projected
            assert upgraded.view.dump(app.name) == rebuilt
            assert search(upgraded, "ålborg") == reference(sample, "ålborg")
            assert_index_matches_table(upgraded)
        finally:
            upgraded.close()

    def test_a_postgres_trigram_index_with_a_pending_list_loses_it_at_start(
        self, app, read_side, sample, store_env
    ):
        view = read_side.view
        if not isinstance(view, PostgresViews):
            pytest.skip("PostgreSQL's GIN index")
        index = f'"{view.datastore.schema}".view_migration_search_trgm'
        # pgstatginindex counts the pending list: contrib, as pg_trgm is, but a new database
        # lacks the extension (made here as the views make pg_trgm: a superuser's tests).
        with view.write() as c:
            c.execute("CREATE EXTENSION IF NOT EXISTS pgstattuple SCHEMA public")
            c.execute(
                "SELECT n.nspname AS schema FROM pg_extension e JOIN pg_namespace n "
                "ON n.oid = e.extnamespace WHERE e.extname = 'pgstattuple'"
            )
            stat = f'"{c.fetchone()["schema"]}".pgstatginindex'
        with view.write() as c:  # as the index was made before: new entries parked
            c.execute(f"ALTER INDEX {index} SET (fastupdate = on)")
        made = str(request(app, "late.onmicrosoft.com", name="Ålborg Late"))
        read_side.catch_up()
        [pending] = view.fetch(f"SELECT pending_tuples FROM {stat}('{index}')")
        assert pending["pending_tuples"] > 0
        read_side.close()
        again = ReadSide(app, store_env)
        try:
            [pending] = again.view.fetch(f"SELECT pending_tuples FROM {stat}('{index}')")
            assert pending["pending_tuples"] == 0
            [options] = again.view.fetch(
                f"SELECT reloptions FROM pg_class WHERE oid = '{index}'::regclass"
            )
            assert options["reloptions"] == ["fastupdate=off"]
            expected = reference({**sample, made: ("Ålborg Late", "")}, "ålborg")
            assert search(again, "ålborg") == expected
        finally:
            again.close()

    def test_postgres_views_from_before_the_words_get_them_at_start(
        self, app, read_side, sample, store_env
    ):
        if not isinstance(read_side.view, PostgresViews):
            pytest.skip("PostgreSQL's words table")
        with read_side.view.write() as c:
            c.execute(read_side.view.sql("DROP TABLE {migration_search_words}"))
        read_side.close()
        again = ReadSide(app, store_env)
        try:
            assert_index_matches_table(again)
            assert search(again, "-ab.ex") == reference(sample, "-ab.ex")
        finally:
            again.close()

    def test_an_older_layout_is_rebuilt_from_the_events(self, app, read_side, sample, store_env):
        before = read_side.view.dump(app.name)
        with read_side.view.write() as c:
            c.execute(read_side.view.sql("UPDATE {schema} SET version = 2"))
        read_side.close()
        again = ReadSide(app, store_env)
        try:
            assert again.runner.position() == 0
            again.catch_up()
            assert again.view.dump(app.name) == before
            assert search(again, "nord") == reference(sample, "nord")
        finally:
            again.close()


class TestWithoutATrigramIndex:
    def test_sqlite_without_the_tokenizer_scans_and_says_so(
        self, app, store_env, monkeypatch, caplog
    ):
        if store_env["PERSISTENCE_MODULE"] != "eventsourcing.sqlite":
            pytest.skip("SQLite's tokenizer")
        monkeypatch.setattr("projections.views.trigram_available", lambda: False)
        with caplog.at_level(logging.WARNING, logger="projections.views"):
            side = ReadSide(app, store_env)
        try:
            assert "no FTS5 trigram tokenizer" in caplog.text
            mid = str(request(app, "odd.onmicrosoft.com", name="Ålborg Ä"))
            side.catch_up()
            assert search(side, "ÅLBORG") == [mid]
        finally:
            side.close()

    def test_postgres_without_pg_trgm_scans_and_says_so(self, app, store_env, monkeypatch, caplog):
        if store_env["PERSISTENCE_MODULE"] != "eventsourcing.postgres":
            pytest.skip("PostgreSQL's extension")
        # An extension that does not exist stands for one this role may not create.
        monkeypatch.setattr(PostgresViews, "TRGM_EXTENSION", "pg_trgm_not_installed")
        with caplog.at_level(logging.WARNING, logger="projections.views"):
            side = ReadSide(app, store_env)
        try:
            assert "pg_trgm_not_installed is not available" in caplog.text
            assert side.view.trgm_schema is None
            mid = str(request(app, "odd.onmicrosoft.com", name="Ålborg Ä"))
            side.catch_up()
            assert search(side, "ÅLBORG") == [mid]
        finally:
            side.close()


class TestNeedleWords:
    """Given a needle, the words any text containing it must have (rows.needle_words)."""

    @pytest.mark.parametrize(
        ("needle", "expected"),
        [
            ("customer 77 ", [("exact", "77"), ("suffix", "customer")]),
            ("customer77.onmicros", [("suffix", "customer77"), ("prefix", "onmicros")]),
            ("-ab.", [("exact", "ab")]),
            ("ltd", []),
            (" .", []),
            ("a b c", [("exact", "b"), ("suffix", "a"), ("prefix", "c")]),
        ],
    )
    def test_whole_words_then_longer_runs(self, needle, expected):
        assert rows.needle_words(needle) == expected

    def test_every_text_containing_the_needle_has_them(self):
        rng = random.Random(3)
        alphabet = "ab7 .-ßİ'"
        for _ in range(3000):
            text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 14)))
            start = rng.randrange(len(text))
            needle = text[start : start + rng.randint(1, 8)]
            words = rows.search_words("", text, "")
            for kind, word in rows.needle_words(needle):
                if kind == "exact":
                    assert word in words, (text, needle)
                elif kind == "prefix":
                    assert any(w.startswith(word) for w in words), (text, needle)
                else:
                    assert any(w.endswith(word) for w in words), (text, needle)

    @pytest.mark.parametrize("prefix", ["ab", "a\U0010ffff", "a\ud7ff", "é"])
    def test_a_prefix_range_holds_exactly_the_strings_that_begin_with_it(self, prefix):
        bounds = rows.prefix_range(prefix)
        if prefix[-1] in ("\U0010ffff", "\ud7ff"):
            assert bounds is None
            return
        assert bounds is not None
        low, high = bounds
        for s in [prefix, prefix + "\U0010ffff", prefix + "z", prefix[:-1], "b", "aa", "ac"]:
            assert (low <= s < high) == s.startswith(prefix), s


def test_the_needle_is_the_documented_text():
    assert rows.search_needle("Ab%_\\C") == "abc"
