"""Known automated user agents, in two groups that page visits treat apart.

**Bots** (:func:`is_bot`; skipped while ``SYNERISE["PAGE_VISITS"]["EXCLUDE_BOTS"]``,
default True): crawlers, uptime monitors and health checks, link previewers,
SEO and security scanners. Nobody looked at the page.

**Automation** (:func:`is_automation`; skipped only with
``SYNERISE["PAGE_VISITS"]["EXCLUDE_AUTOMATION"]``, default False): HTTP
libraries and tools (``curl``, ``python-requests``, ``Go-http-client``,
``okhttp`` ...) and browser automation (``HeadlessChrome``, Playwright,
Puppeteer, Selenium, PhantomJS, WebDriver). A page visit is only recorded when
the request carries the tracker's cookie or a logged-in user, so such a client
is almost always a deliberate session: a QA script, an app's webview, an
end-to-end test.

A user agent can be in both (``Scrapy/2.11 (+https://scrapy.org)`` is a
crawler built on an HTTP library); it is then a bot. The lists err on the side
of people: an entry goes in only when no browser a person uses sends it. An
empty user agent is in neither (some privacy tools strip it).

Each group is three tuples, all lower case and matched against the
lower-cased user agent: ``*_PREFIXES`` (the user agent starts with it),
``*_SUBSTRINGS`` (it appears anywhere) and ``*_PATTERNS`` (regex fragments,
for the few entries that need word boundaries). To extend one, add an entry
to the right tuple and a user agent to ``tests/test_bots.py``.

Each group is compiled into one regex on first use, with the literal entries
folded into a trie (``go(?:-http-client|ogle...)``): as a plain alternation
of 150 words it took about 740 µs per browser user agent, as a trie about 20.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from typing import Any

__all__ = [
    "AUTOMATION_PATTERNS",
    "AUTOMATION_PREFIXES",
    "AUTOMATION_SUBSTRINGS",
    "BOT_PATTERNS",
    "BOT_PREFIXES",
    "BOT_SUBSTRINGS",
    "automation_regex",
    "bot_regex",
    "is_automation",
    "is_bot",
]

# -- Bots: crawlers, monitors, previewers, scanners ---------------------------------------

#: Literal starts of crawlers' and fetchers' user agents.
BOT_PREFIXES: tuple[str, ...] = (
    "scrapy",
    "colly",
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
)

#: Regex fragments for entries that need more than a literal match; a fragment
#: starting with ``^`` only matches at the start of the user agent.
BOT_PATTERNS: tuple[str, ...] = (
    r"(?<!cu)bot(?:\b|_)",  # "...bot", "bot/1.0"; "Cubot" is a phone maker
    r"\b(?:index(?:er|ing)|(?<!node-)fetch(?:er)?|rss)\b",  # node-fetch is a library
    r"^mozilla/5\.0 \(compatible\)$",
    # A URL in the user agent is a crawler's contact page, unless it is the home page
    # of an HTTP library that puts it there ("got (https://github.com/sindresorhus/got)").
    r"https?://(?!github\.com/(?:sindresorhus/got|bitinn/node-fetch|node-fetch/node-fetch)\b)",
)

# -- Automation: HTTP libraries and tools, browser automation -----------------------------

#: Literal starts of HTTP libraries' and command-line tools' user agents.
AUTOMATION_PREFIXES: tuple[str, ...] = (
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
    "rust",
    "postmanruntime",
    "insomnia",
    "httpie",
    "mechanize",
    "http_request",
    "jakarta",
)

#: Literal fragments of HTTP libraries and browser automation anywhere in the user agent.
AUTOMATION_SUBSTRINGS: tuple[str, ...] = (
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
    "dart:io",  # "Dart/3.3 (dart:io)"
    "powershell",  # "Mozilla/5.0 (Windows NT; ...) WindowsPowerShell/5.1"
    # Browser automation: a real browser engine driven by a script.
    "headless",  # HeadlessChrome, Puppeteer's and Playwright's default
    "phantomjs",
    "puppeteer",
    "playwright",
    "selenium",
    "webdriver",
)

#: Regex fragments of the automation group (none need more than a literal yet).
AUTOMATION_PATTERNS: tuple[str, ...] = ()


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


def _compile(
    prefixes: Iterable[str], substrings: Iterable[str], patterns: Iterable[str]
) -> re.Pattern[str]:
    # Anchored entries share one \A branch: tried at every position, it fails at once.
    anchored = [_trie_regex(prefixes)]
    anchored += [pattern[1:] for pattern in patterns if pattern.startswith("^")]
    anywhere = [_trie_regex(substrings)]
    anywhere += [pattern for pattern in patterns if not pattern.startswith("^")]
    # An empty branch would match every user agent.
    anchored = [branch for branch in anchored if branch]
    anywhere = [branch for branch in anywhere if branch]
    if anchored:
        anywhere.insert(0, r"\A(?:" + "|".join(anchored) + ")")
    return re.compile("|".join(anywhere) or r"(?!)")


@functools.cache
def bot_regex() -> re.Pattern[str]:
    """The bot lists as one regex over a lower-cased user agent, compiled on first use."""
    return _compile(BOT_PREFIXES, BOT_SUBSTRINGS, BOT_PATTERNS)


@functools.cache
def automation_regex() -> re.Pattern[str]:
    """The automation lists as one regex over a lower-cased user agent, compiled on first use."""
    return _compile(AUTOMATION_PREFIXES, AUTOMATION_SUBSTRINGS, AUTOMATION_PATTERNS)


def is_bot(user_agent: str | None) -> bool:
    """Whether ``user_agent`` is a known crawler, monitor, link previewer or scanner.

    HTTP libraries and browser automation are not bots (see
    :func:`is_automation`). ``None`` and ``""`` are not bots. Only the first
    1,000 characters are read.
    """
    if not user_agent:
        return False
    return bot_regex().search(user_agent[:1000].lower()) is not None


def is_automation(user_agent: str | None) -> bool:
    """Whether ``user_agent`` is an HTTP library or tool, or an automated browser.

    ``None`` and ``""`` are not. Only the first 1,000 characters are read.
    """
    if not user_agent:
        return False
    return automation_regex().search(user_agent[:1000].lower()) is not None
