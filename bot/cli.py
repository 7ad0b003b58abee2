"""The `newswatch` command: parses arguments and wires the parts; holds no logic of its own."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from bot import __version__
from bot.aliases import load_aliases
from bot.app import App, fetch_policy
from bot.backtest import (
    backtest,
    match_archive,
    parse_moment,
    render_json,
    render_text,
    resolve,
    window_notes,
)
from bot.clock import SystemClock
from bot.config import Config, load_config
from bot.configedit import NewFeed
from bot.discover import FeedLink
from bot.errors import ConfigError, FeedError, NewswatchError, SourceError
from bot.explain import emphasized
from bot.feedsetup import Found, add_feed, import_opml, url_key
from bot.fetch import Fetcher, FetchPolicy
from bot.health import feed_health, pages_line, render_table, when
from bot.index import RuleIndex
from bot.models import FeedConfig, Rule
from bot.normalize import normalize_entries
from bot.opml import write_opml
from bot.parse import parse_feed
from bot.rules import load_library, load_rule
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
    feeds_sub = feeds.add_subparsers(dest="feeds_command")
    add = feeds_sub.add_parser("add", help="add a feed, or the feed a site's page links")
    add.add_argument("url", metavar="URL", help="a feed's URL or a site's home page")
    add.add_argument("--name", help="name in config.yaml (default: from the feed's title)")
    pick = add.add_mutually_exclusive_group()
    pick.add_argument("--pick", type=int, metavar="N", help="the N-th feed the page links")
    pick.add_argument("--choose", metavar="FEED_URL", help="the feed the page links at FEED_URL")
    add.add_argument("--full-text", action="store_true", help="set full_text: true")
    add.set_defaults(func=cmd_feeds_add)
    imp = feeds_sub.add_parser("import", help="add the feeds of an OPML file")
    imp.add_argument("file", type=Path, metavar="FILE.opml")
    imp.add_argument("--full-text", action="store_true", help="set full_text: true on each")
    imp.set_defaults(func=cmd_feeds_import)
    exp = feeds_sub.add_parser("export", help="write the feeds as OPML 2.0")
    exp.add_argument("-o", "--output", type=Path, help="file to write (default: stdout)")
    exp.set_defaults(func=cmd_feeds_export)

    test = sub.add_parser(
        "backtest", help="what a rule file would have matched in the archive, and what alerted"
    )
    test.add_argument("rule_file", type=Path, metavar="RULE_FILE")
    test.add_argument("--since", type=_moment, default=timedelta(days=7), help="e.g. 7d (default)")
    test.add_argument("--until", type=_moment, help="e.g. 1d or 2025-07-30 (default: now)")
    test.add_argument("--json", action="store_true", help="one JSON document")
    test.set_defaults(func=cmd_backtest)

    search = sub.add_parser("search", help="full-text search of the archived articles")
    search.add_argument("query", metavar="QUERY", help="words (all must occur) or FTS5 syntax")
    search.add_argument("--since", type=_moment, help="e.g. 7d or 2025-07-30 (default: all)")
    search.add_argument("--limit", type=int, default=20, help="at most this many (default 20)")
    search.set_defaults(func=cmd_search)
    return parser


def _moment(text: str) -> timedelta | datetime:
    try:
        return parse_moment(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


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
        if held := store.held_count():  # for a digest, a cap's window or quiet hours' end
            out = when(store.next_release(), ZoneInfo(config.display_timezone))
            print(f"held: {held} alerts for digests, caps and quiet hours; the next go out {out}")
        for group in store.parked():
            what = "channel refused" if group.scope == "channel" else "message refused"
            print(
                f"parked {group.channel}: {group.count} alerts, {what}: {group.reason} "
                f"(since {group.since.isoformat()}; `newswatch retry --channel {group.channel}`)"
            )
        tz = ZoneInfo(config.display_timezone)
        pages = store.page_counts()
        for row in feed_health(config.feeds, store.feed_states(), SystemClock().now(), pages):
            line = f"feed {row.name}: {row.status}, last success {when(row.last_success, tz)}"
            line += f", seen {row.articles_seen}"
            if row.failures:
                line += f", {row.failures} failures"
            if row.last_error:
                line += f", last error: {row.last_error}"
            if row.pages.fetched:
                line += f", full text: {pages_line(row.pages)}"
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
        rows = feed_health(
            config.feeds, store.feed_states(), SystemClock().now(), store.page_counts()
        )
    finally:
        store.close()
    print(render_table(rows, ZoneInfo(config.display_timezone)), end="")
    return 0


def cmd_feeds_add(args: argparse.Namespace) -> int:
    """Find the feed (autodiscovery on a page), fetch it once to check it, add it."""
    config = load_config(args.config)

    async def go() -> tuple[NewFeed, Found]:
        fetcher = Fetcher(fetch_policy(config))
        try:
            return await add_feed(
                config,
                fetcher,
                args.url,
                name=args.name,
                choose=lambda links: _choose(args, links),
                full_text=args.full_text,
            )
        finally:
            await fetcher.aclose()

    new, found = asyncio.run(go())
    where = f" (found on {found.page})" if found.page else ""
    print(f"added feed {new.name}: {new.url}{where}")
    print(f"    {found.title or '(untitled)'}, {found.entries} entries now; in {config.path}")
    return 0


def _choose(args: argparse.Namespace, links: Sequence[FeedLink]) -> FeedLink:
    """One of several feeds a page links: by --pick or --choose, else asked on a terminal."""
    listing = "\n".join(
        f"  {n}. {link.title or '(untitled)'}  {link.url}" for n, link in enumerate(links, 1)
    )
    pick: int | None = args.pick
    if pick is not None:
        if 1 <= pick <= len(links):
            return links[pick - 1]
        raise SourceError(args.url, f"--pick {pick}: choose 1 to {len(links)}:\n{listing}")
    if args.choose is not None:
        for link in links:
            if url_key(link.url) == url_key(args.choose):
                return link
        raise SourceError(args.url, f"--choose: the page links no such feed:\n{listing}")
    if not sys.stdin.isatty():
        raise SourceError(
            args.url,
            f"the page links {len(links)} feeds; choose one with --pick N or --choose URL:\n"
            + listing,
        )
    print(f"{args.url} links {len(links)} feeds:\n{listing}")
    while True:
        try:
            answer = input(f"which one (1-{len(links)})? ").strip()
        except EOFError:
            raise SourceError(args.url, "no feed chosen") from None
        if answer.isdigit() and 1 <= int(answer) <= len(links):
            return links[int(answer) - 1]


def cmd_feeds_import(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    result = import_opml(config, args.file, full_text=args.full_text)
    for new in result.added:
        print(f"added {new.name}: {new.url}")
    for entry, why in result.skipped:
        print(f"skipped {entry.title or entry.url}: {why}")
    if result.added:
        print(
            "the added URLs are now configured feeds, fetched as written like every URL in "
            f"{config.path.name} (only their redirects are checked): review them"
        )
    print(f"{len(result.added)} added, {len(result.skipped)} skipped; in {config.path}")
    return 0


def cmd_feeds_export(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    text = write_opml(config.feeds, SystemClock().now())
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text, encoding="utf-8")
    return 0


def cmd_backtest(args: argparse.Namespace) -> int:
    """The rule file, loaded as the bot loads it, run by the real matcher over the archive."""
    from bot.store import Store

    config = load_config(args.config)
    aliases = load_aliases(config.aliases_dir)
    for error in aliases.errors:
        print(f"warning: {error}", file=sys.stderr)
    rule = load_rule(
        args.rule_file,
        config.slack.default_channel,
        known_feeds=[f.name for f in config.feeds],
        aliases=aliases.terms,
    )
    tz = ZoneInfo(config.display_timezone)
    now = SystemClock().now()
    since = resolve(args.since, now)
    until = now if args.until is None else resolve(args.until, now)
    store = Store.open(config.database)
    try:
        span = store.archive_span()
        notes = window_notes(span.count, span.first_seen, since, config.archive_retention, now)
        archived = ((a.article, a.at) for a in store.archived(since, until))
        matched, scanned = match_archive(rule, archived)
        alerted = store.alerted_rules(rule.channel, [a.cross_key for a, _, _ in matched])
    finally:
        store.close()
    result = backtest(rule, matched, alerted, since=since, until=until, scanned=scanned, tz=tz)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    if args.json:
        print(render_json(result))
    else:
        print(render_text(result, tz, lambda t: f"{t.astimezone(tz):%Y-%m-%d %H:%M}"), end="")
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    """Archived articles matching the query, newest first, each with a snippet."""
    from bot.store import Store

    config = load_config(args.config)
    tz = ZoneInfo(config.display_timezone)
    since = None if args.since is None else resolve(args.since, SystemClock().now())
    store = Store.open(config.database)
    try:
        hits = store.search_archive(args.query, since=since, limit=max(args.limit, 1))
    finally:
        store.close()
    for hit in hits:
        print(f"{hit.at.astimezone(tz):%Y-%m-%d %H:%M}  {hit.source}  {hit.title}")
        print(f"    {emphasized(hit.snippet)}")
        if hit.link:
            print(f"    {hit.link}")
    more = " (the limit; see --limit)" if len(hits) == args.limit else ""
    print(f"{len(hits)} articles{more}")
    return 0
