"""Article web pages for full-text tests, shaped like news sites' pages (written for the tests)."""

from __future__ import annotations

from html import escape

HTML = {"Content-Type": "text/html; charset=utf-8"}

FILLER = (
    "Defense officials in Seoul and Washington met on Tuesday for the annual security talks, "
    "which covered joint exercises, cost sharing and the posture of forces on the peninsula.",
    "The talks ran for two days and ended with a joint statement that both sides described as "
    "constructive, though several questions were left for working-level meetings.",
)


def article_page(headline: str, *paragraphs: str, filler: bool = True) -> str:
    """A news page: site header and menu, the article, related links, a footer, a cookie bar;
    two paragraphs of filler before `paragraphs` unless `filler` is false."""
    body = "\n".join(
        f"      <p>{escape(p)}</p>" for p in (*(FILLER if filler else ()), *paragraphs)
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>{escape(headline)} | Loopback Wire</title>
  <meta property="og:title" content="{escape(headline)}">
  <link rel="stylesheet" href="/static/site.css">
  <script>window.dataLayer = window.dataLayer || [];</script>
</head>
<body>
  <header class="site-header">
    <a class="logo" href="/">Loopback Wire</a>
    <nav><ul><li><a href="/politics">Politics</a></li><li><a href="/nk">North Korea</a></li>
    <li><a href="/defense">Defense</a></li><li><a href="/world">World</a></li></ul></nav>
  </header>
  <main>
    <article class="story">
      <h1>{escape(headline)}</h1>
      <div class="byline">By Kim Min-ji, staff reporter</div>
      <div class="article-body">
{body}
      </div>
    </article>
    <aside class="related"><h2>Most read</h2><ul>
      <li><a href="/a/1">Rainy season arrives early in Jeju</a></li>
      <li><a href="/a/2">Exports rise for a third month</a></li></ul></aside>
  </main>
  <footer>Copyright 2025 Loopback Wire. All rights reserved. <a href="/terms">Terms</a></footer>
  <div class="cookie-bar">We use cookies to improve your experience.</div>
</body>
</html>
"""


def page_without_text() -> str:
    """A page with only a menu and a footer: a link to a section front or a video page."""
    return """<!DOCTYPE html>
<html><head><title>Video | Loopback Wire</title></head>
<body><header><nav><a href="/">Home</a> <a href="/video">Video</a></nav></header>
<div id="player" data-src="/v/123.m3u8"></div>
<footer>Copyright 2025 Loopback Wire</footer></body></html>
"""
