"""Newswatch: polls news feeds, matches YAML watch rules, posts summaries to Slack."""

__version__ = "0.1.0"
