"""OPML from common readers (tests/data/opml), imported into config.yaml and exported back."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.cli import main
from bot.config import load_config
from bot.errors import SourceError
from bot.models import FeedConfig
from bot.opml import OpmlFeed, read_opml, write_opml
from tests.feedserver import FeedServer

REPO = Path(__file__).resolve().parents[1]
OPML = Path(__file__).parent / "data" / "opml"
DOD = "https://www.dod.example/DesktopModules/ArticleCS/RSS.ashx?ContentType=1&Site=945&max=10"


def read(name: str) -> list[OpmlFeed]:
    return read_opml((OPML / name).read_bytes(), name)


def test_a_feedly_export_with_folders() -> None:
    assert read("feedly.opml") == [
        OpmlFeed(
            "Loopback Wire",
            "https://en.wire.example/RSS/news.xml",
            "https://en.wire.example/",
            "Korea",
        ),
        OpmlFeed(
            "Korea Daily - Nation",
            "https://www.koreadaily.example/rss/nation.xml",
            "https://www.koreadaily.example/",
            "Korea",
        ),
        OpmlFeed("DoD News", DOD, "https://www.dod.example/", "Defense"),
    ]


def test_an_inoreader_export_with_nested_folders_and_a_feed_outside_any() -> None:
    feeds = read("inoreader.opml")
    assert [(f.title, f.folder) for f in feeds] == [
        ("한반도신문 정치", "Alliance"),
        ("Alliance Watch", "Think tanks"),
        ("Loopback Wire", None),
    ]


def test_miniflux_and_netnewswire_exports() -> None:
    assert [f.url for f in read("miniflux.opml")] == [
        DOD,
        "https://unification.example/rss/allArticle.xml",
    ]
    assert [f.title for f in read("netnewswire.opml")] == [
        "Seoul Security Review",
        "Korea Daily - Nation",
        "Podcast feed",
    ]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"<opml><body><outline text='x'></body></opml>", "not well-formed XML at line 1"),
        (b"<rss version='2.0'><channel/></rss>", "not OPML: the root element is <rss>"),
        (b"<opml version='2.0'><head/></opml>", "not OPML: no <body>"),
        (b"", "not well-formed XML"),
    ],
)
def test_malformed_opml_is_an_error_naming_the_file(data: bytes, reason: str) -> None:
    with pytest.raises(SourceError, match=reason) as caught:
        read_opml(data, "subs.opml")
    assert str(caught.value).startswith("subs.opml: ")


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE opml [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">]>
<opml version="2.0"><body><outline title="&d;" xmlUrl="https://x.example/rss"/></body></opml>"""
XXE = b"""<?xml version="1.0"?>
<!DOCTYPE opml [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<opml version="2.0"><body><outline title="&secret;" xmlUrl="https://x.example/rss"/></body></opml>"""


@pytest.mark.parametrize("data", [BILLION_LAUGHS, XXE])
def test_entity_expansion_and_external_entities_are_refused(data: bytes) -> None:
    with pytest.raises(SourceError, match="refused unsafe XML"):
        read_opml(data, "evil.opml")


def test_an_external_dtd_or_parameter_entity_is_never_fetched(feed_server: FeedServer) -> None:
    dtd = feed_server.url("/evil.dtd")
    feed_server.add("/evil.dtd", b'<!ENTITY leak "leaked">')
    external = (
        f'<?xml version="1.0"?><!DOCTYPE opml SYSTEM "{dtd}">'
        '<opml version="2.0"><body><outline xmlUrl="https://x.example/rss"/></body></opml>'
    ).encode()
    parameter = (
        f'<?xml version="1.0"?><!DOCTYPE opml [<!ENTITY % p SYSTEM "{dtd}"> %p;]>'
        "<opml version='2.0'><body/></opml>"
    ).encode()
    for data in (external, parameter):
        with pytest.raises(SourceError, match="refused unsafe XML"):
            read_opml(data, "evil.opml")
    assert feed_server.requests == []


def copy_config(tmp_path: Path) -> Path:
    return Path(shutil.copy(REPO / "config.yaml", tmp_path / "config.yaml"))


def test_import_adds_new_feeds_skips_known_ones_and_keeps_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = copy_config(tmp_path)
    before = config.read_text(encoding="utf-8")
    assert main(["--config", str(config), "feeds", "import", str(OPML / "feedly.opml")]) == 0
    assert main(["--config", str(config), "feeds", "import", str(OPML / "netnewswire.opml")]) == 0
    out = capsys.readouterr().out
    assert "3 added, 0 skipped" in out
    assert "skipped Korea Daily - Nation: already there as 'korea-daily-nation'" in out
    assert "skipped Podcast feed: not an http(s) URL" in out
    assert "2 skipped" in out.splitlines()[-1]
    after = config.read_text(encoding="utf-8")
    assert after.startswith(before)  # every line of the shipped file, comments included
    names = [f.name for f in load_config(config).feeds]
    assert names[-4:] == [
        "loopback-wire",
        "korea-daily-nation",
        "dod-news",
        "seoul-security-review",
    ]
    assert load_config(config).feed("dod-news").url == DOD


def test_import_names_feeds_with_korean_titles_after_their_host(tmp_path: Path) -> None:
    config = copy_config(tmp_path)
    assert main(["--config", str(config), "feeds", "import", str(OPML / "inoreader.opml")]) == 0
    feeds = {f.name: f.url for f in load_config(config).feeds}
    assert feeds["rss-hanbando-example"] == "https://rss.hanbando.example/politics.xml"


def test_a_missing_or_malformed_file_is_an_error_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = copy_config(tmp_path)
    bad = tmp_path / "subs.opml"
    bad.write_text("<opml><body>", encoding="utf-8")
    assert main(["--config", str(config), "feeds", "import", str(bad)]) == 2
    assert f"error: {bad}: not well-formed XML" in capsys.readouterr().err
    assert main(["--config", str(config), "feeds", "import", str(tmp_path / "none.opml")]) == 2
    assert "none.opml: cannot read" in capsys.readouterr().err


def test_export_writes_opml_2_that_reads_back_as_the_configured_feeds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = REPO / "config.yaml"
    assert main(["--config", str(config), "feeds", "export"]) == 0
    text = capsys.readouterr().out
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<opml version="2.0">')
    feeds = read_opml(text.encode(), "stdout")
    configured = load_config(config).feeds
    assert [(f.title, f.url) for f in feeds] == [(f.name, f.url) for f in configured]
    out = tmp_path / "feeds.opml"
    assert main(["--config", str(config), "feeds", "export", "-o", str(out)]) == 0
    assert read_opml(out.read_bytes(), str(out)) == feeds


def test_exported_text_is_escaped_and_dated() -> None:
    feed = FeedConfig("dod", DOD, interval=timedelta(minutes=10), backlog=None)
    local = FeedConfig(
        "local", "/srv/feeds/local.xml", interval=timedelta(minutes=10), backlog=None
    )
    text = write_opml([feed, local], datetime(2025, 7, 31, 6, 0, tzinfo=UTC))
    assert "ContentType=1&amp;Site=945&amp;max=10" in text
    assert "<dateCreated>Thu, 31 Jul 2025 06:00:00 GMT</dateCreated>" in text
    assert "local.xml" not in text  # a local file is no subscription


def test_imported_urls_become_configured_urls_and_never_local_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An imported feed is a configured feed: its URL is written as it was (a loopback one too,
    trusted as written like any in config.yaml, only its redirects checked), while anything
    config.yaml would read as a local file is skipped."""
    config = copy_config(tmp_path)
    subs = tmp_path / "subs.opml"
    outlines = [
        ("Intranet wire", "http://127.0.0.1:8080/wire.xml"),
        ("Passwords", "/etc/passwd"),
        ("Relative", "feeds/local.xml"),
        ("File URL", "file:///etc/passwd"),
        ("Script", "javascript:alert(1)"),
    ]
    body = "".join(f'<outline type="rss" text="{t}" xmlUrl="{u}"/>' for t, u in outlines)
    subs.write_text(f'<opml version="2.0"><body>{body}</body></opml>', encoding="utf-8")
    assert main(["--config", str(config), "feeds", "import", str(subs)]) == 0
    out = capsys.readouterr().out
    assert "1 added, 4 skipped" in out
    assert "fetched as written like every URL in config.yaml" in out
    for title, _ in outlines[1:]:
        assert f"skipped {title}: not an http(s) URL" in out
    feeds = load_config(config).feeds
    assert feeds[-1].url == "http://127.0.0.1:8080/wire.xml"
    assert not any(f.url.startswith("/") for f in feeds)  # no local file became a feed
