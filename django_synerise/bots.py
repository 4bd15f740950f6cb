"""Known automated user agents: crawlers, monitors, link previewers, HTTP libraries.

:func:`is_bot` tells the page-visit middleware which requests are not people.
The list errs on the side of people: an entry goes in only when no browser a
person uses sends it. Non-browser HTTP clients (``curl``, ``python-requests``,
``Go-http-client`` ...) count as bots, like the JS tracker, which never runs
in them. An empty user agent is *not* a bot (some privacy tools strip it).

The list is three tuples, all lower case and matched against the lower-cased
user agent: :data:`BOT_PREFIXES` (the user agent starts with it),
:data:`BOT_SUBSTRINGS` (it appears anywhere) and :data:`BOT_PATTERNS` (regex
fragments, for the few entries that need word boundaries). To extend it, add
an entry to the right tuple and a user agent to ``tests/test_middleware.py``.

They are compiled into one regex on first use, with the literal entries
folded into a trie (``go(?:-http-client|ogle...)``): as a plain alternation
of 150 words it took about 740 µs per browser user agent, as a trie about 20.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from typing import Any

__all__ = ["BOT_PATTERNS", "BOT_PREFIXES", "BOT_SUBSTRINGS", "bot_regex", "is_bot"]

#: Literal starts of non-browser user agents (HTTP libraries and tools).
BOT_PREFIXES: tuple[str, ...] = (
    "curl/",
    "wget/",
    "libwww-perl",
    "lwp-",
    "python/",
    "go-http-client",
    "java/",
    "axios/",
    "undici",
    "got (",
    "ruby",
    "faraday",
    "php/",
    "dart:io",
    "rust",
    "postmanruntime",
    "insomnia",
    "httpie",
    "powershell",
    "mechanize",
    "scrapy",
    "colly",
    "http_request",
    "jakarta",
    "feed",
    "whatsapp/",  # WhatsApp's link-preview fetcher, not its in-app browser
)

#: Literal fragments that no person's browser sends.
BOT_SUBSTRINGS: tuple[str, ...] = (
    # Self-declared.
    "crawl",
    "spider",
    "scraper",
    "scraping",
    "slurp",  # Yahoo
    "archiver",
    "http://",  # a URL in the user agent is a crawler's contact page
    "https://",
    # Search engines and SEO tools whose names do not say "bot".
    "mediapartners-google",
    "adsbot",
    "apis-google",
    "feedfetcher",
    "google-inspectiontool",
    "googleother",
    "google-read-aloud",
    "storebot-google",
    "bingpreview",
    "baiduspider",
    "yandexbot",
    "yandeximages",
    "yandexmetrika",
    "yandexdirect",
    "yandexmobilebot",
    "yandexaccessibilitybot",
    "sogou",
    "exabot",
    "ia_archiver",
    "qwantify",
    "seznam",
    "petalsearch",
    "screaming frog",
    "sitebulb",
    "siteimprove",
    # AI and data crawlers.
    "gptbot",
    "chatgpt-user",
    "oai-searchbot",
    "claudebot",
    "claude-web",
    "claude-user",
    "claude-searchbot",
    "anthropic-ai",
    "perplexitybot",
    "perplexity-user",
    "ccbot",
    "bytespider",
    "diffbot",
    "cohere-ai",
    "meta-externalagent",
    "imagesiftbot",
    "amazonbot",
    "applebot",
    # Link previews and social networks.
    "facebookexternalhit",
    "facebookcatalog",
    "twitterbot",
    "linkedinbot",
    "slackbot",
    "slack-imgproxy",
    "discordbot",
    "telegrambot",
    "skypeuripreview",
    "pinterestbot",
    "redditbot",
    "embedly",
    "vkshare",
    "iframely",
    "outbrain",
    "quora link preview",
    "bitlybot",
    # Uptime monitors, performance and security scanners, health checks.
    "pingdom",
    "uptimerobot",
    "statuscake",
    "site24x7",
    "newrelicpinger",
    "datadog",
    "nagios",
    "zabbix",
    "monitor",
    "lighthouse",
    "pagespeed",
    "gtmetrix",
    "headless",
    "phantomjs",
    "puppeteer",
    "playwright",
    "selenium",
    "webdriver",
    "nmap",
    "nikto",
    "sqlmap",
    "masscan",
    "zgrab",
    "nuclei",
    "censys",
    "shodan",
    "qualys",
    "acunetix",
    "burp",
    "wpscan",
    "w3c_validator",
    "validator.nu",
    "check_http",
    "cloudflare-alwaysonline",
    "cloudflare-healthchecks",
    "cloudflare-traffic-manager",
    "elb-healthchecker",
    "kube-probe",
    "googlehc",
    "healthcheck",
    "health-check",
    # HTTP libraries that may not come first in the user agent.
    "python-requests",
    "python-urllib",
    "python-httpx",
    "aiohttp",
    "httpx",
    "urllib3",
    "apache-httpclient",
    "okhttp",
    "node-fetch",
    "guzzlehttp",
    "reqwest",
)

#: Regex fragments for entries that need more than a literal match; a fragment
#: starting with ``^`` only matches at the start of the user agent.
BOT_PATTERNS: tuple[str, ...] = (
    r"(?<!cu)bot(?:\b|_)",  # "...bot", "bot/1.0"; "Cubot" is a phone maker
    r"\b(?:index(?:er|ing)|fetch(?:er)?|rss)\b",
    r"^mozilla/5\.0 \(compatible\)$",
)


def _trie_regex(words: Iterable[str]) -> str:
    """One regex matching any of ``words``, as a trie: shared starts are tried once."""
    trie: dict[str, dict[str, Any]] = {}
    for word in words:
        node = trie
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}

    def build(node: dict[str, Any]) -> str:
        branches = [re.escape(char) + build(child) for char, child in sorted(node.items()) if char]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        # A word that ends here makes the rest optional ("bot" and "bots").
        return f"(?:{body})?" if "" in node else body

    return build(trie)


@functools.cache
def bot_regex() -> re.Pattern[str]:
    """The three lists as one regex over a lower-cased user agent, compiled on first use."""
    # Anchored entries share one \A branch: tried at every position, it fails at once.
    anchored = [_trie_regex(BOT_PREFIXES)]
    anchored += [pattern[1:] for pattern in BOT_PATTERNS if pattern.startswith("^")]
    anywhere = [_trie_regex(BOT_SUBSTRINGS)]
    anywhere += [pattern for pattern in BOT_PATTERNS if not pattern.startswith("^")]
    return re.compile(r"\A(?:" + "|".join(anchored) + ")|" + "|".join(anywhere))


def is_bot(user_agent: str | None) -> bool:
    """Whether ``user_agent`` belongs to a known crawler, monitor or HTTP library.

    ``None`` and ``""`` are not bots. Only the first 1,000 characters are read.
    """
    if not user_agent:
        return False
    return bot_regex().search(user_agent[:1000].lower()) is not None
