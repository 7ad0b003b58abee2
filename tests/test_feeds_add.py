"""`newswatch feeds add`: a feed's URL or a site's page (autodiscovery), checked by one fetch
through the real fetcher, appended to config.yaml; duplicates and private links refused."""

from __future__ import annotations

import asyncio
import io
import re
from datetime import UTC, datetime
from ipaddress import ip_address
from pathlib import Path

import pytest

from bot.cli import main
from bot.config import load_config
from bot.errors import FetchError
from bot.feedsetup import find_feed
from bot.fetch import Fetcher, FetchPolicy, IPAddress
from tests.e2e import Item, rss
from tests.feedserver import FeedServer
from tests.pages import HTML

PAGES = Path(__file__).parent / "data" / "pages"
CONFIG = """\
# Newswatch configuration (test copy)
slack:
  default_channel: "#news-alerts"   # for rules that name no channel
fetch:
  allow_private: [127.0.0.0/8]      # the test servers run on loopback
feeds:
  # English
  - name: existing
    url: https://existing.example/rss.xml
"""
TWO_FEEDS = """<html><head><title>Alliance Watch</title>
<link rel="alternate" type="application/rss+xml" title="Posts" href="/feed/">
<link rel="alternate" type="application/atom+xml" title="Comments" href="/comments/feed/">
</head><body></body></html>"""


def feed(title: str) -> str:
    when = datetime(2025, 7, 31, 6, 0, tzinfo=UTC)
    return rss([Item("g-1", "Allies hold talks", "Talks.", when)], title=title)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    return path


@pytest.fixture
def site(feed_server: FeedServer) -> FeedServer:
    feed_server.add("/", (PAGES / "wire-home.html").read_bytes(), headers=HTML)
    feed_server.add("/RSS/news.xml", feed("Loopback Wire - All news"))
    feed_server.add("/blog/", TWO_FEEDS, headers=HTML)
    feed_server.add("/feed/", feed("Alliance Watch"))
    feed_server.add("/comments/feed/", feed("Comments on Alliance Watch"))
    feed_server.add("/plain/", (PAGES / "no-feed.html").read_bytes(), headers=HTML)
    return feed_server


def add(config: Path, *args: str) -> int:
    return main(["--config", str(config), "feeds", "add", *args])


def added(config: Path) -> list[tuple[str, str]]:
    return [(f.name, f.url) for f in load_config(config).feeds][1:]


def test_a_feed_url_is_checked_and_appended_keeping_the_file(
    config: Path, site: FeedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    url = site.url("/RSS/news.xml")
    assert add(config, url) == 0
    assert f"added feed loopback-wire-all-news: {url}" in capsys.readouterr().out
    assert config.read_text(encoding="utf-8") == CONFIG + (
        f"  - name: loopback-wire-all-news\n    url: {url}\n"
    )
    assert len(site.requests_for("/RSS/news.xml")) == 1  # fetched once to check it


def test_a_home_page_leads_to_the_feed_it_links(
    config: Path, site: FeedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert add(config, site.url("/"), "--name", "wire", "--full-text") == 0
    assert f"(found on {site.url('/')})" in capsys.readouterr().out
    assert added(config) == [("wire", site.url("/RSS/news.xml"))]
    assert load_config(config).feed("wire").full_text


def test_several_feeds_need_a_choice_when_there_is_no_terminal(
    config: Path,
    site: FeedServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert add(config, site.url("/blog/")) == 2
    err = capsys.readouterr().err
    assert "the page links 2 feeds; choose one with --pick N or --choose URL" in err
    assert (
        f"1. Posts  {site.url('/feed/')}" in err
        and f"2. Comments  {site.url('/comments/feed/')}" in err
    )
    assert added(config) == []
    assert add(config, site.url("/blog/"), "--pick", "2") == 0
    assert add(config, site.url("/blog/"), "--choose", site.url("/feed"), "--name", "posts") == 0
    assert added(config) == [
        ("comments-on-alliance-watch", site.url("/comments/feed/")),
        ("posts", site.url("/feed/")),
    ]


def test_several_feeds_are_offered_in_a_prompt_on_a_terminal(
    config: Path,
    site: FeedServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("sys.stdin", Terminal("9\nposts\n1\n"))  # two bad answers, then 1
    assert add(config, site.url("/blog/")) == 0
    assert "links 2 feeds" in capsys.readouterr().out
    assert added(config) == [("alliance-watch", site.url("/feed/"))]


def test_a_duplicate_url_or_name_is_refused_and_the_file_untouched(
    config: Path, site: FeedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert add(config, site.url("/RSS/news.xml"), "--name", "wire") == 0
    before = config.read_text(encoding="utf-8")
    assert add(config, site.url("/")) == 2  # the page leads to the same feed
    assert "already in config.yaml as feed 'wire'" in capsys.readouterr().err
    assert add(config, "HTTPS://Existing.example:443/rss.xml/") == 2
    assert "already in config.yaml as feed 'existing'" in capsys.readouterr().err
    assert add(config, site.url("/feed/"), "--name", "existing") == 2
    assert "a feed named 'existing' is already in config.yaml" in capsys.readouterr().err
    assert config.read_text(encoding="utf-8") == before


def test_a_page_without_a_feed_or_a_broken_feed_is_an_error(
    config: Path, site: FeedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert add(config, site.url("/plain/")) == 2
    assert "not a feed, and the page links no feed" in capsys.readouterr().err
    site.add("/broken.xml", b"<rss><channel><title>x", headers={"Content-Type": "text/xml"})
    site.add(
        "/links-broken/", '<link rel="alternate" type="application/rss+xml" href="/broken.xml">'
    )
    assert add(config, site.url("/links-broken/")) == 2
    assert "error: feed new-feed" in capsys.readouterr().err
    assert added(config) == []


def test_a_page_linking_a_feed_at_a_private_address_is_refused(
    config: Path, site: FeedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """The typed address is the operator's; the link found on the page is not."""
    strict = config.read_text(encoding="utf-8").replace("[127.0.0.0/8]", "[]")
    config.write_text(strict, encoding="utf-8")
    assert add(config, site.url("/")) == 2
    err = capsys.readouterr().err
    assert f"link to {site.url('/RSS/news.xml')} refused: 127.0.0.1 is not a public address" in err
    assert site.requests_for("/RSS/news.xml") == []
    assert config.read_text(encoding="utf-8") == strict


def test_a_feed_link_whose_name_resolves_to_a_private_address_is_refused(
    site: FeedServer,
) -> None:
    site.add(
        "/intranet/",
        '<link rel="alternate" type="application/rss+xml" '
        'href="http://feeds.intranet.example/rss">',
        headers=HTML,
    )

    async def resolver(host: str, port: int) -> list[IPAddress]:
        return [ip_address("10.0.0.5")]

    async def go() -> None:
        fetcher = Fetcher(FetchPolicy(deadline=2.0, resolver=resolver))
        try:
            await find_feed(fetcher, site.url("/intranet/"), lambda links: links[0])
        finally:
            await fetcher.aclose()

    with pytest.raises(FetchError, match=re.escape("feeds.intranet.example resolves to 10.0.0.5")):
        asyncio.run(go())


def test_a_typed_url_is_trusted_like_a_configured_one_but_not_where_it_redirects(
    tmp_path: Path, site: FeedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without allow_private: the analyst's own loopback URL is fetched (as config.yaml's
    would be), a redirect from it to a private address is refused."""
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG.replace("  allow_private: [127.0.0.0/8]", "  deadline: 5s"), "utf-8")
    assert add(path, site.url("/RSS/news.xml")) == 0
    assert len(site.requests_for("/RSS/news.xml")) == 1
    site.add_redirect("/moved.xml", "http://169.254.169.254/latest/meta-data/")
    assert add(path, site.url("/moved.xml")) == 2
    assert "169.254.169.254 is not a public address" in capsys.readouterr().err
    assert [f.url for f in load_config(path).feeds][1:] == [site.url("/RSS/news.xml")]
