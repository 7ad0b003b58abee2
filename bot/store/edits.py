"""The store's edits: an alerted article changed at its source, told once in its thread."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime

import sqlalchemy as sa

from bot.models import Article
from bot.store.content import decode_content, encode_content
from bot.store.database import Database
from bot.store.schema import alerts, story_members
from bot.story import Signature, substantive_edit


class EditStore(Database):
    """An edit is an outbox row of kind "edit" (keyed by the alert it follows and a digest of
    the new version, so each distinct edit is queued once) that goes into that alert's thread."""

    def queue_edits(
        self,
        items: Sequence[tuple[Article, Signature]],
        threshold: float,
        now: datetime,
        quiet: Mapping[str, datetime] | None = None,
    ) -> int:
        """For each seen article (with its signature now) that alerted in a channel: queue
        "updated: <headline>" when it changed substantively since the version last told there
        (see `substantive_edit`), due at once or, in a channel in `quiet` hours, when they end;
        returns how many were queued."""
        if not items:
            return 0
        queued = 0
        with self._tx() as conn:
            for article, sig in items:
                told = conn.execute(
                    sa.select(
                        alerts.c.id, alerts.c.channel, alerts.c.content, story_members.c.signature
                    )
                    .outerjoin(story_members, story_members.c.alert_id == alerts.c.id)
                    .where(
                        alerts.c.cross_key == article.cross_key,
                        alerts.c.kind.is_(None),
                        alerts.c.status != "parked",
                    )
                ).all()
                for row in told:
                    content = decode_content(row.content)
                    title = content.title
                    old = Signature.decode(row.signature) if row.signature else None
                    last = conn.execute(
                        sa.select(alerts.c.content)
                        .where(
                            alerts.c.channel == row.channel,
                            alerts.c.cross_key.startswith(f"edit:{row.id}:"),
                        )
                        .order_by(alerts.c.id.desc())
                        .limit(1)
                    ).scalar_one_or_none()
                    if last is not None:
                        data = json.loads(last)["edit"]
                        title, old = data["title"], Signature.decode(data["signature"])
                    if not substantive_edit(title, old, article.title, sig, threshold):
                        continue
                    version = f"{article.title}\0{sig.encode()}"
                    digest = hashlib.sha256(version.encode()).hexdigest()[:16]
                    new = replace(content, title=article.title, link=article.link or content.link)
                    body = {
                        "edit": {
                            "of": row.id,
                            "title": article.title,
                            "signature": sig.encode(),
                            "content": json.loads(encode_content(new)),
                        }
                    }
                    result = conn.execute(
                        self._insert(alerts)
                        .values(
                            channel=row.channel,
                            cross_key=f"edit:{row.id}:{digest}",
                            feed="",
                            content=json.dumps(body, ensure_ascii=False),
                            kind="edit",
                            status="pending",
                            attempts=0,
                            next_attempt_at=(quiet or {}).get(row.channel, now),
                            created_at=now,
                        )
                        .on_conflict_do_nothing()
                    )
                    queued += max(result.rowcount, 0)
        return queued

    def edit_thread(self, alert_id: int) -> str | None:
        """The ts of the message whose thread an edit of alert `alert_id` goes into (its
        story's first message when the alert was itself a reply; "" on a terminal), or None
        when that message was never posted."""
        with self._tx() as conn:
            story = conn.execute(
                sa.select(story_members.c.story_id).where(story_members.c.alert_id == alert_id)
            ).scalar_one_or_none()
            row = conn.execute(
                sa.select(alerts.c.status, alerts.c.slack_ts).where(
                    alerts.c.id == (story if story is not None else alert_id)
                )
            ).one_or_none()
        if row is None or row.status != "sent":
            return None
        return str(row.slack_ts or "")


def decode_edit(text: str) -> tuple[int, str]:
    """An edit row's content: the alert it follows, and its AlertContent as JSON."""
    data = json.loads(text)["edit"]
    return int(data["of"]), json.dumps(data["content"], ensure_ascii=False)
