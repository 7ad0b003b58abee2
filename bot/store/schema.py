"""The schema: tables, the UTC datetime type, and the append-only list of migrations."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, whatever the backend stores."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


metadata = sa.MetaData()

schema_version = sa.Table(
    "schema_version", metadata, sa.Column("version", sa.Integer, primary_key=True)
)

feeds = sa.Table(
    "feeds",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("etag", sa.Text),
    sa.Column("last_modified", sa.Text),
    sa.Column("first_polled_at", UTCDateTime),
    sa.Column("last_polled_at", UTCDateTime),
    sa.Column("last_success_at", UTCDateTime),
    sa.Column("last_error", sa.Text),
    sa.Column("last_error_at", UTCDateTime),
    sa.Column("consecutive_failures", sa.Integer, nullable=False, server_default="0"),
    sa.Column("articles_seen", sa.Integer, nullable=False, server_default="0"),
)

seen_articles = sa.Table(
    "seen_articles",
    metadata,
    sa.Column("feed", sa.String(64), primary_key=True),
    sa.Column("feed_key", sa.Text, primary_key=True),
    sa.Column("cross_key", sa.Text, nullable=False),
    sa.Column("first_seen_at", UTCDateTime, nullable=False),
    sa.Column("last_seen_at", UTCDateTime),  # version 10: the last full poll that listed it
    sa.Index("ix_seen_cross_key", "cross_key"),
    sa.Index("ix_seen_last", "feed", "last_seen_at"),
)

alerts = sa.Table(
    "alerts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("channel", sa.String(100), nullable=False),
    sa.Column("cross_key", sa.Text, nullable=False),
    sa.Column("feed", sa.String(64), nullable=False),
    sa.Column("content", sa.Text, nullable=False),  # AlertContent as JSON
    sa.Column("status", sa.String(16), nullable=False, server_default="pending"),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", UTCDateTime, nullable=False),
    sa.Column("last_error", sa.Text),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("sent_at", UTCDateTime),
    sa.Column("slack_ts", sa.String(64)),
    sa.Column("slack_channel_id", sa.String(32)),
    # version 3: attempt metadata, parking, the unknown-outcome state
    sa.Column("last_attempt_at", UTCDateTime),
    sa.Column("unknown_since", UTCDateTime),  # an attempt may have posted: reconcile first
    sa.Column("parked_reason", sa.Text),  # status "parked": Slack refused it for good
    sa.Column("parked_scope", sa.String(16)),  # "channel" (holds the route) or "message"
    sa.Column("parked_config", sa.String(64)),  # configuration fingerprint when parked
    sa.Column("parked_at", UTCDateTime),
    sa.Column("kind", sa.String(16)),  # "notice": an operational notice; else (NULL) an alert
    sa.UniqueConstraint("channel", "cross_key", name="uq_alert_channel_article"),
    sa.Index("ix_alerts_due", "status", "next_attempt_at"),
)

notices = sa.Table(
    "notices",
    metadata,
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("changed_at", UTCDateTime, nullable=False),
)

rule_snapshots = sa.Table(
    "rule_snapshots",
    metadata,
    sa.Column("path", sa.Text, primary_key=True),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("saved_at", UTCDateTime, nullable=False),
)


slack_channels = sa.Table(
    "slack_channels",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),  # as configured, e.g. "#news"
    sa.Column("channel_id", sa.String(32), nullable=False),  # as Slack answered, e.g. "C0123"
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

ALERT_COLUMNS_V3 = (
    "last_attempt_at",
    "unknown_since",
    "parked_reason",
    "parked_scope",
    "parked_config",
    "parked_at",
    "kind",
)

feed_polling = sa.Table(
    "feed_polling",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("effective_url", sa.Text),
    sa.Column("moved_to", sa.Text),
    sa.Column("moved_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_poll_at", UTCDateTime),
    sa.Column("next_poll_reason", sa.String(32)),
    sa.Column("disabled_reason", sa.Text),
    sa.Column("last_new_at", UTCDateTime),
    sa.Column("failing_since", UTCDateTime),
)

# version 5: full article text fetched from the article's page, at most once per article (the
# cross-feed key); `text` None with `error` set when the page could not be fetched or had none.
article_pages = sa.Table(
    "article_pages",
    metadata,
    sa.Column("cross_key", sa.Text, primary_key=True),
    sa.Column("feed", sa.String(64), nullable=False),  # the feed whose poll fetched it
    sa.Column("text", sa.Text),
    sa.Column("error", sa.Text),
    sa.Column("fetched_at", UTCDateTime, nullable=False),
    sa.Index("ix_article_pages_feed", "feed", "fetched_at"),
)


# version 4: every polled article, kept for the configured retention; on SQLite, with the
# FTS5 index below over its title, summary and content
archive = sa.Table(
    "archive",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("feed", sa.String(64), nullable=False),
    sa.Column("feed_key", sa.Text, nullable=False),
    sa.Column("cross_key", sa.Text, nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("summary", sa.Text, nullable=False),
    sa.Column("content", sa.Text, nullable=False),
    sa.Column("link", sa.Text),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("published", UTCDateTime),
    sa.Column("first_seen_at", UTCDateTime, nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),  # published, else first seen: its place in time
    sa.UniqueConstraint("feed", "feed_key", name="uq_archive_feed_key"),
    sa.Index("ix_archive_at", "at"),
    sa.Index("ix_archive_first_seen", "first_seen_at"),
)

# The archive's full-text index on SQLite: an FTS5 table over the archive's own rows (external
# content: the text is stored once), kept in step by triggers. The `trigram` tokenizer indexes
# every three-character sequence, so a Korean word is found inside the eojeol that carries its
# particle (주한미군 in 주한미군이) and an English stem inside its word (troop in troops);
# `unicode61` would index 주한미군이 as one token and miss both. Terms shorter than three
# characters cannot use it: archive.py scans for those.
ARCHIVE_FTS_SQLITE = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS archive_fts USING fts5("
    "title, summary, content, content='archive', content_rowid='id', tokenize='trigram')",
    "CREATE TRIGGER IF NOT EXISTS archive_fts_insert AFTER INSERT ON archive BEGIN "
    "INSERT INTO archive_fts(rowid, title, summary, content) "
    "VALUES (new.id, new.title, new.summary, new.content); END",
    "CREATE TRIGGER IF NOT EXISTS archive_fts_delete AFTER DELETE ON archive BEGIN "
    "INSERT INTO archive_fts(archive_fts, rowid, title, summary, content) "
    "VALUES ('delete', old.id, old.title, old.summary, old.content); END",
)

# version 7: noise control — alerts held for a digest, a cap or quiet hours; what each rule
# posted in the last hour; when each rule last said it reached its cap
held_alerts = sa.Table(
    "held_alerts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(16), nullable=False),  # "digest", "catch-up" or "quiet"
    sa.Column("channel", sa.String(100), nullable=False),
    sa.Column("rule", sa.String(100), nullable=False),  # "" for quiet hours
    sa.Column("cross_key", sa.Text, nullable=False),
    sa.Column("content", sa.Text, nullable=False),  # AlertContent as JSON
    sa.Column("held_at", UTCDateTime, nullable=False),
    sa.Column("release_at", UTCDateTime, nullable=False),
    sa.Column("batch_id", sa.Integer),  # the outbox row that carries it; 0: dropped
    sa.Column("signature", sa.Text),  # version 8: its story signature, to fold copies
    sa.UniqueConstraint("kind", "channel", "rule", "cross_key", name="uq_held_alert"),
    sa.Index("ix_held_due", "batch_id", "release_at"),
)

rule_posts = sa.Table(
    "rule_posts",
    metadata,
    sa.Column("rule", sa.String(100), primary_key=True),
    sa.Column("channel", sa.String(100), primary_key=True),
    sa.Column("cross_key", sa.Text, primary_key=True),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Index("ix_rule_posts_at", "rule", "at"),
)

cap_notes = sa.Table(
    "cap_notes",
    metadata,
    sa.Column("rule", sa.String(100), primary_key=True),
    sa.Column("noted_at", UTCDateTime, nullable=False),
)


# version 6: one story, one thread. Every alert of a channel that took part in grouping is a
# member of a story; the story's first alert is posted top-level, the others in its thread.
story_members = sa.Table(
    "story_members",
    metadata,
    sa.Column("alert_id", sa.Integer, primary_key=True),  # alerts.id
    sa.Column("story_id", sa.Integer, nullable=False),  # alerts.id of the story's first alert
    sa.Column("channel", sa.String(100), nullable=False),
    sa.Column("signature", sa.Text, nullable=False),  # bot.story.Signature.encode()
    sa.Column("source", sa.Text, nullable=False),  # the outlet, for "also reported by N"
    sa.Column("at", UTCDateTime, nullable=False),  # when it was queued: the window counts from it
    sa.Index("ix_story_members_recent", "channel", "at"),
    sa.Index("ix_story_members_story", "story_id"),
)

stories = sa.Table(
    "stories",
    metadata,
    sa.Column("alert_id", sa.Integer, primary_key=True),  # the top-level alert
    sa.Column("shown", sa.Integer, nullable=False, server_default="0"),  # count in the message
    sa.Column("recount", sa.Boolean, nullable=False, server_default=sa.false()),  # may change
    sa.Column("retry_at", UTCDateTime),  # a failed update of the message is tried again then
    sa.Index("ix_stories_recount", "recount"),
)


def _migration_1(conn: Connection) -> None:
    """The first schema: every table above as it stands at version 1."""
    metadata.create_all(conn, tables=[feeds, seen_articles, alerts, notices, rule_snapshots])


def _migration_2(conn: Connection) -> None:
    """How each feed is polled: effective URL, next poll and why, 410 reason, failure run."""
    metadata.create_all(conn, tables=[feed_polling])


def _add_missing_columns(conn: Connection, table: sa.Table, names: Sequence[str]) -> None:
    """ALTER TABLE ADD COLUMN for each (nullable) column a database made earlier lacks."""
    have = {c["name"] for c in sa.inspect(conn).get_columns(table.name)}
    for name in names:
        if name not in have:
            kind = table.c[name].type.compile(dialect=conn.dialect)
            conn.execute(sa.text(f"ALTER TABLE {table.name} ADD COLUMN {name} {kind}"))


def _migration_3(conn: Connection) -> None:
    """Delivery: attempt metadata, parked alerts, the unknown-outcome state, channel IDs."""
    _add_missing_columns(conn, alerts, ALERT_COLUMNS_V3)
    slack_channels.create(conn, checkfirst=True)


def _migration_4(conn: Connection) -> None:
    """The article archive and, on SQLite, its full-text index kept in step by triggers."""
    archive.create(conn, checkfirst=True)
    if conn.dialect.name == "sqlite":
        for statement in ARCHIVE_FTS_SQLITE:
            conn.execute(sa.text(statement))


def _migration_5(conn: Connection) -> None:
    """Full text: each article page fetched, or why not, by cross-feed key."""
    article_pages.create(conn, checkfirst=True)


def _migration_6(conn: Connection) -> None:
    """Stories: which alerts are near-duplicates of which, and the count each message shows."""
    metadata.create_all(conn, tables=[story_members, stories])


def _migration_7(conn: Connection) -> None:
    """Noise control: held alerts, each rule's posts of the last hour, cap notes."""
    metadata.create_all(conn, tables=[held_alerts, rule_posts, cap_notes])


def _migration_8(conn: Connection) -> None:
    """Held alerts keep their story signature, so copies held together are listed once."""
    _add_missing_columns(conn, held_alerts, ["signature"])


# version 9: the archive's FTS5 index merges its segments less eagerly. FTS5 merges them as they
# pile up (`automerge`, 4 segments per level by default); letting 16 gather first rewrites
# less of the index per new article (about 12 % less CPU per archived article, measured by
# benchmarks/bench_archive.py) while searches stay as fast. A persistent setting of the FTS5
# table: nothing is rebuilt.
ARCHIVE_FTS_AUTOMERGE = 16


def _migration_9(conn: Connection) -> None:
    """The archive's full-text index: FTS5 automerge raised to ARCHIVE_FTS_AUTOMERGE."""
    if conn.dialect.name == "sqlite":
        conn.execute(
            sa.text("INSERT INTO archive_fts(archive_fts, rank) VALUES ('automerge', :n)"),
            {"n": ARCHIVE_FTS_AUTOMERGE},
        )


def _migration_10(conn: Connection) -> None:
    """Seen keys remember the last full poll that listed them (first sighting until then), so
    that the ones gone from their feed for longer than the retention can be forgotten."""
    _add_missing_columns(conn, seen_articles, ["last_seen_at"])
    conn.execute(
        seen_articles.update()
        .where(seen_articles.c.last_seen_at.is_(None))
        .values(last_seen_at=seen_articles.c.first_seen_at)
    )
    for index in seen_articles.indexes:
        if index.name == "ix_seen_last":
            index.create(conn, checkfirst=True)


# Append-only: a migration, once released, is never edited; the next change is a new number.
MIGRATIONS: tuple[tuple[int, Callable[[Connection], None]], ...] = (
    (1, _migration_1),
    (2, _migration_2),
    (3, _migration_3),
    (4, _migration_4),
    (5, _migration_5),
    (6, _migration_6),
    (7, _migration_7),
    (8, _migration_8),
    (9, _migration_9),
    (10, _migration_10),
)


def migrate(conn: Connection) -> int:
    """Apply, in order, every migration above the database's version; returns the version."""
    schema_version.create(conn, checkfirst=True)
    current = conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar() or 0
    for version, step in MIGRATIONS:
        if version > current:
            step(conn)
            conn.execute(schema_version.insert().values(version=version))
            current = version
    return current
