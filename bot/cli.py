"""The `newswatch` command: parses arguments and wires the parts; holds no logic of its own."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from bot import __version__
from bot.app import App, fetch_policy
from bot.clock import SystemClock
from bot.config import Config, load_config
from bot.errors import ConfigError, FeedError, NewswatchError
from bot.explain import emphasized
from bot.fetch import Fetcher, FetchPolicy
from bot.health import feed_health, render_table, when
from bot.index import RuleIndex
from bot.models import FeedConfig, Rule
from bot.normalize import normalize_entries
from bot.parse import parse_feed
from bot.rules import load_library
from bot.work import matches_for
from bot.yamlfile import yaml_files

DEFAULT_CONFIG = "config.yaml"
MATCH_DEFAULT_CHANNEL = "#news-alerts"  # `match` without a config: channels do not matter


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("httpx", "apscheduler"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return int(args.func(args))
    except NewswatchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="newswatch", description="Polls news feeds, matches watch rules, posts to Slack."
    )
    parser.add_argument("--version", action="version", version=f"newswatch {__version__}")
    parser.add_argument("--config", default=DEFAULT_CONFIG, help="path to config.yaml")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning"])
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="poll feeds on their schedule and post alerts")
    run.add_argument("--once", action="store_true", help="poll every feed once, deliver, exit")
    run.set_defaults(func=cmd_run)

    check = sub.add_parser("check", help="validate config.yaml and every rule file")
    check.set_defaults(func=cmd_check)

    match = sub.add_parser("match", help="show which rules match the articles of feeds")
    match.add_argument("sources", nargs="+", metavar="SOURCE", help="feed file or URL")
    match.add_argument("--rules", type=Path, help="rules folder (default: from the config)")
    match.add_argument(
        "--aliases",
        type=Path,
        help="aliases folder (default: from the config, else an aliases folder beside the rules)",
    )
    match.add_argument("--json", action="store_true", help="one JSON object per match")
    match.add_argument(
        "--explain", action="store_true", help="show each term that fired and its sentence"
    )
    match.set_defaults(func=cmd_match)

    status = sub.add_parser("status", help="feeds, pending alerts and open problems")
    status.set_defaults(func=cmd_status)

    retry = sub.add_parser("retry", help="try parked alerts again (after fixing the cause)")
    retry.add_argument("--channel", help="only this channel's parked alerts")
    retry.set_defaults(func=cmd_retry)
    feeds = sub.add_parser("feeds", help="each feed's health and when it is polled next")
    feeds.set_defaults(func=cmd_feeds)
    return parser


def cmd_run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    return asyncio.run(_run(config, once=args.once))


async def _run(config: Config, *, once: bool) -> int:
    app = App.create(config)
    try:
        if once:
            outcomes = await app.run_once()
            return 1 if outcomes and all(o.status == "error" for o in outcomes) else 0
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await app.run_forever(stop)
        return 0
    finally:
        await app.close()


def cmd_check(args: argparse.Namespace) -> int:
    """Strict: every problem in config.yaml and every rule file, each with file:line:column."""
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(exc)
        return 1
    problems: list[str] = []
    if not config.rules_dir.is_dir():
        problems.append(f"{config.rules_dir}: rules folder does not exist")
    files = yaml_files(config.rules_dir)
    if config.aliases_dir is not None and not config.aliases_dir.is_dir():
        problems.append(f"{config.aliases_dir}: aliases folder does not exist")
    ruleset = load_library(
        config.rules_dir,
        config.aliases_dir,
        config.slack.default_channel,
        known_feeds=[f.name for f in config.feeds],
    )
    problems += [str(error) for error in ruleset.errors]
    for problem in problems:
        print(problem)
    print(
        f"{len(config.feeds)} feeds, {len(ruleset.aliases.terms)} aliases, "
        f"{len(ruleset.rules)} of {len(files)} rules OK, {len(problems)} problems"
    )
    return 1 if problems else 0


def cmd_match(args: argparse.Namespace) -> int:
    config_path = Path(args.config)
    aliases_dir: Path | None = None
    if config_path.exists():
        config = load_config(config_path)
        rules_dir, channel = config.rules_dir, config.slack.default_channel
        aliases_dir = config.aliases_dir
        policy = fetch_policy(config)
    elif args.rules is not None:
        rules_dir, channel = args.rules, MATCH_DEFAULT_CHANNEL
        policy = FetchPolicy()
    else:
        raise ConfigError(config_path, "no config file; name a rules folder with --rules")
    rules_dir = args.rules or rules_dir
    if args.aliases is not None:
        aliases_dir = args.aliases
    elif aliases_dir is None and (rules_dir.parent / "aliases").is_dir():
        aliases_dir = rules_dir.parent / "aliases"  # the usual layout beside the rules folder
    ruleset = load_library(rules_dir, aliases_dir, channel)
    for error in ruleset.errors:
        print(f"skipped: {error}", file=sys.stderr)
    status = asyncio.run(
        _match(args.sources, list(ruleset.rules), policy, as_json=args.json, explain=args.explain)
    )
    return status or (1 if ruleset.errors else 0)


async def _match(
    sources: Sequence[str],
    rules: list[Rule],
    policy: FetchPolicy,
    *,
    as_json: bool,
    explain: bool = False,
) -> int:
    fetcher = Fetcher(policy)
    failed = 0
    now = SystemClock().now()
    index = RuleIndex(rules)
    try:
        for source in sources:
            url = source if "://" in source else str(Path(source).resolve())
            feed = FeedConfig(
                name=_source_name(source), url=url, interval=timedelta(0), backlog=None
            )
            try:
                fetched = await fetcher.fetch(feed.name, feed.url, etag=None, last_modified=None)
                parsed = parse_feed(fetched.body, fetched.headers, feed=feed.name, url=fetched.url)
            except FeedError as exc:
                print(f"error: {exc}", file=sys.stderr)
                failed += 1
                continue
            for article in normalize_entries(parsed, feed.name, now):
                for rule, match in matches_for(article, index):
                    if as_json:
                        print(
                            json.dumps(
                                {
                                    "rule": rule.name,
                                    "channel": rule.channel,
                                    "source": source,
                                    "title": article.title,
                                    "link": article.link,
                                    "published": article.published.isoformat()
                                    if article.published
                                    else None,
                                    "matched": list(match.terms),
                                    "explanation": [
                                        {
                                            "field": e.field,
                                            "terms": list(e.terms),
                                            "sentence": emphasized(e.sentence, "", ""),
                                            "marked": emphasized(e.sentence, "**", "**"),
                                        }
                                        for e in match.evidence
                                    ],
                                },
                                ensure_ascii=False,
                            )
                        )
                    else:
                        terms = ", ".join(match.terms)
                        print(f"{rule.name}: {article.title}\n    {article.link or '-'}")
                        print(f"    matched: {terms}")
                        if explain:
                            for e in match.evidence:
                                print(f"    {e.field}: {', '.join(e.terms)}")
                                print(f"        {emphasized(e.sentence)}")
    finally:
        await fetcher.aclose()
    return 1 if failed else 0


def _source_name(source: str) -> str:
    name = Path(source.split("?")[0].rstrip("/")).name or "source"
    return "".join(c if c.isalnum() or c in "._-" else "-" for c in name)[:64] or "source"


def cmd_retry(args: argparse.Namespace) -> int:
    """Parked alerts (all, or one channel's) go back to pending; a running bot sends them."""
    from bot.store import Store

    config = load_config(args.config)
    store = Store.open(config.database)
    try:
        count = store.unpark(SystemClock().now(), channel=args.channel)
    finally:
        store.close()
    where = f" for {args.channel}" if args.channel else ""
    print(f"{count} parked alerts{where} will be tried again")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from bot.store import Store

    config = load_config(args.config)
    store = Store.open(config.database)
    try:
        counts = store.alert_counts()
        print(f"alerts: {counts.pending} pending, {counts.sent} sent, {counts.parked} parked")
        for group in store.parked():
            what = "channel refused" if group.scope == "channel" else "message refused"
            print(
                f"parked {group.channel}: {group.count} alerts, {what}: {group.reason} "
                f"(since {group.since.isoformat()}; `newswatch retry --channel {group.channel}`)"
            )
        tz = ZoneInfo(config.display_timezone)
        for row in feed_health(config.feeds, store.feed_states(), SystemClock().now()):
            line = f"feed {row.name}: {row.status}, last success {when(row.last_success, tz)}"
            line += f", seen {row.articles_seen}"
            if row.failures:
                line += f", {row.failures} failures"
            if row.last_error:
                line += f", last error: {row.last_error}"
            print(line)
        for key, message in store.active_notices():
            print(f"problem [{key}]: {message}")
    finally:
        store.close()
    return 0


def cmd_feeds(args: argparse.Namespace) -> int:
    """The feed health table: status, last success and error, failures, next poll, articles."""
    from bot.store import Store

    config = load_config(args.config)
    store = Store.open(config.database)
    try:
        rows = feed_health(config.feeds, store.feed_states(), SystemClock().now())
    finally:
        store.close()
    print(render_table(rows, ZoneInfo(config.display_timezone)), end="")
    return 0
