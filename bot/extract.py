"""An article page's main text, extracted with trafilatura (the only importer of it)."""

from __future__ import annotations

MAX_TEXT_CHARS = 100_000  # an article's full text is cut here, whatever the page holds
MIN_TEXT_CHARS = 200  # less than this is a teaser, a cookie wall or an error page


def main_text(html: bytes | str, url: str | None = None) -> str | None:
    """The page's main text (paragraphs joined by newlines), or None when it has none.

    Navigation, comments, tables and boilerplate are left out; the text is capped at
    MAX_TEXT_CHARS. Pure: the page is given, nothing is fetched.
    """
    if not html.strip():
        return None
    import trafilatura  # here: only worker processes extract, and it takes 0.25 s to import

    text = trafilatura.extract(
        html,
        url=url,
        include_comments=False,
        include_tables=False,
        favor_precision=True,
        deduplicate=False,
    )
    if text is None:
        return None
    text = text.strip()
    if len(text) < MIN_TEXT_CHARS:
        return None
    return text[:MAX_TEXT_CHARS]
