"""Known automated user agents: crawlers, monitors, link previewers, HTTP libraries.

:func:`is_bot` tells the page-visit middleware which requests are not people.
The list errs on the side of people: a pattern goes in only when no browser a
person uses sends it. Non-browser HTTP clients (``curl``, ``python-requests``,
``Go-http-client`` ...) count as bots, like the JS tracker, which never runs
in them. An empty user agent is *not* a bot (some privacy tools strip it).

To extend it, add a pattern to :data:`BOT_PATTERNS` here (lower-case regex
fragments, matched case-insensitively anywhere in the user agent) with a test.
"""

from __future__ import annotations

import functools
import re

__all__ = ["BOT_PATTERNS", "bot_regex", "is_bot"]

#: Regex fragments, one per family; matched with ``re.search``, case-insensitive.
BOT_PATTERNS: tuple[str, ...] = (
    # Self-declared: most crawlers say so in their name.
    r"(?<!cu)bot(?:\b|_)",  # "Cubot" is a phone maker, not a bot
    r"crawl",
    r"spider",
    r"scrap(?:er|y|ing)",
    r"slurp",  # Yahoo
    r"archiver",
    r"\bindex(?:er|ing)\b",
    r"\bfetch(?:er)?\b",
    r"https?://",  # a URL in the user agent is a crawler's contact page
    r"\+https?:",
    # Search engines and SEO tools whose names do not say "bot".
    r"mediapartners-google",
    r"adsbot",
    r"apis-google",
    r"feedfetcher",
    r"google-inspectiontool",
    r"googleother",
    r"google-read-aloud",
    r"storebot-google",
    r"bingpreview",
    r"baiduspider",
    r"yandex(?:bot|images|metrika|direct|mobilebot|accessibilitybot)",
    r"sogou",
    r"exabot",
    r"ia_archiver",
    r"qwantify",
    r"seznam",
    r"petalsearch",
    r"screaming frog",
    r"sitebulb",
    r"siteimprove",
    # AI and data crawlers.
    r"gptbot",
    r"chatgpt-user",
    r"oai-searchbot",
    r"claude(?:bot|-web|-user|-searchbot)",
    r"anthropic-ai",
    r"perplexity(?:bot|-user)",
    r"ccbot",
    r"bytespider",
    r"diffbot",
    r"cohere-ai",
    r"meta-externalagent",
    r"imagesiftbot",
    r"amazonbot",
    r"applebot",
    # Link previews and social networks.
    r"facebookexternalhit",
    r"facebookcatalog",
    r"twitterbot",
    r"linkedinbot",
    r"slackbot",
    r"slack-imgproxy",
    r"discordbot",
    r"telegrambot",
    r"^whatsapp/",  # the link-preview fetcher, not the in-app browser
    r"skypeuripreview",
    r"pinterestbot",
    r"redditbot",
    r"embedly",
    r"vkshare",
    r"iframely",
    r"outbrain",
    r"quora link preview",
    r"bitlybot",
    # Uptime monitors, performance and security scanners.
    r"pingdom",
    r"uptimerobot",
    r"statuscake",
    r"site24x7",
    r"newrelicpinger",
    r"datadog",
    r"nagios",
    r"zabbix",
    r"monitor",
    r"lighthouse",
    r"pagespeed",
    r"gtmetrix",
    r"chrome-lighthouse",
    r"headlesschrome",
    r"phantomjs",
    r"nmap",
    r"nikto",
    r"sqlmap",
    r"masscan",
    r"zgrab",
    r"nuclei",
    r"censys",
    r"shodan",
    r"qualys",
    r"acunetix",
    r"burp",
    r"wpscan",
    r"w3c_validator",
    r"validator\.nu",
    r"check_http",
    r"cloudflare-(?:alwaysonline|healthchecks|traffic-manager)",
    r"elb-healthchecker",
    r"kube-probe",
    r"googlehc",
    r"health-?check",
    # Non-browser HTTP clients and libraries.
    r"^curl/",
    r"^wget/",
    r"^libwww-perl",
    r"^lwp-",
    r"python-requests",
    r"python-urllib",
    r"python-httpx",
    r"^python/",
    r"aiohttp",
    r"httpx",
    r"urllib3",
    r"^go-http-client",
    r"^java/",
    r"apache-httpclient",
    r"okhttp",
    r"^axios/",
    r"node-fetch",
    r"^undici",
    r"^got \(",
    r"^ruby",
    r"^faraday",
    r"^php/",
    r"guzzlehttp",
    r"^dart:io",
    r"^rust",
    r"reqwest",
    r"^postmanruntime",
    r"^insomnia",
    r"^httpie",
    r"^powershell",
    r"^mechanize",
    r"^scrapy",
    r"^colly",
    r"^http_request",
    r"^jakarta",
    r"^feed",
    r"\brss\b",
    r"headless",
    r"puppeteer",
    r"playwright",
    r"selenium",
    r"webdriver",
    r"^mozilla/5\.0 \(compatible\)$",
)


@functools.cache
def bot_regex() -> re.Pattern[str]:
    """:data:`BOT_PATTERNS` as one case-insensitive regex, compiled on first use."""
    return re.compile("|".join(f"(?:{pattern})" for pattern in BOT_PATTERNS), re.IGNORECASE)


def is_bot(user_agent: str | None) -> bool:
    """Whether ``user_agent`` belongs to a known crawler, monitor or HTTP library.

    ``None`` and ``""`` are not bots. Only the first 1,000 characters are read.
    """
    if not user_agent:
        return False
    return bot_regex().search(user_agent[:1000]) is not None
