"""django_synerise.bots: which user agents are crawlers and which are automation."""

from __future__ import annotations

import pytest

from django_synerise.bots import is_automation, is_bot

CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"
)


# Bots ----------------------------------------------------------------------------------

BROWSERS = [
    CHROME,
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/470.0.0.0;FBBV/123]",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Mobile/15E148 Instagram 335.0.0.0 (iPhone14,5; iOS 17_5; en_US)",
    "Mozilla/5.0 (Linux; Android 10; CUBOT_X30) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/125.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "SamsungBrowser/25.0 Chrome/121.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36 Edg/126.0.0.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36 OPR/111.0.0.0",
    "",
]

BOTS = [
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; bingbot/2.0; "
    "+http://www.bing.com/bingbot.htm) Chrome/116.0.1938.76 Safari/537.36",
    "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",
    "Mozilla/5.0 (compatible; Baiduspider/2.0; +http://www.baidu.com/search/spider.html)",
    "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
    "Twitterbot/1.0",
    "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
    "WhatsApp/2.23.20.0 A",
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; "
    "+https://openai.com/gptbot)",
    "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
    "Mozilla/5.0 (compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)",
    "Mozilla/5.0 (compatible; SomeCrawler/1.0; +https://crawler.example/about)",
    "Mozilla/5.0 (Linux; Android 11; moto g power (2022)) AppleWebKit/537.36 (KHTML, like "
    "Gecko) Chrome/109.0.0.0 Mobile Safari/537.36 Chrome-Lighthouse",
    "Scrapy/2.11.2 (+https://scrapy.org)",  # a crawler built on an HTTP library
    "Mozilla/5.0 (compatible; ExampleBot/1.0) HeadlessChrome/126.0.0.0",
    "kube-probe/1.29",
    "ELB-HealthChecker/2.0",
]

#: HTTP libraries and browser automation: not bots, excluded only with EXCLUDE_AUTOMATION.
AUTOMATION = [
    "curl/8.5.0",
    "Wget/1.21.4",
    "python-requests/2.32.3",
    "python-httpx/0.27.0",
    "Python/3.12 aiohttp/3.9.5",
    "Go-http-client/1.1",
    "Go-http-client/2.0",
    "okhttp/4.12.0",
    "axios/1.7.2",
    "got (https://github.com/sindresorhus/got)",
    "node-fetch/1.0 (+https://github.com/bitinn/node-fetch)",
    "node-fetch",
    "Java/17.0.2",
    "Apache-HttpClient/4.5.14 (Java/17.0.10)",
    "PostmanRuntime/7.39.0",
    "Dart/3.3 (dart:io)",
    "Mozilla/5.0 (Windows NT; Windows NT 10.0; en-US) WindowsPowerShell/5.1.22621.2506",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "HeadlessChrome/126.0.0.0 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/534.34 (KHTML, like Gecko) PhantomJS/2.1.1 "
    "Safari/534.34",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/126.0.0.0 Safari/537.36 Playwright/1.45",
    "Mozilla/5.0 (X11; Linux x86_64) Chrome/126.0.0.0 Safari/537.36 Puppeteer",
    "Mozilla/5.0 (X11; Linux x86_64) Firefox/127.0 Selenium/4.21",
    "Mozilla/5.0 (X11; Linux x86_64) Chrome/126.0 Safari/537.36 WebDriver",
]


@pytest.mark.parametrize("user_agent", BROWSERS)
def test_browsers_are_people(user_agent: str) -> None:
    assert not is_bot(user_agent)
    assert not is_automation(user_agent)


@pytest.mark.parametrize("user_agent", BOTS)
def test_bots_are_recognised(user_agent: str) -> None:
    assert is_bot(user_agent)


@pytest.mark.parametrize("user_agent", AUTOMATION)
def test_automation_is_recognised_and_is_not_a_bot(user_agent: str) -> None:
    assert is_automation(user_agent)
    assert not is_bot(user_agent)


def test_every_listed_entry_is_recognised() -> None:
    from django_synerise.bots import (
        AUTOMATION_PREFIXES,
        AUTOMATION_SUBSTRINGS,
        BOT_PREFIXES,
        BOT_SUBSTRINGS,
    )

    for prefix in BOT_PREFIXES:
        assert is_bot(prefix.upper() + "1.0"), prefix
    for prefix in AUTOMATION_PREFIXES:
        assert is_automation(prefix.upper() + "1.0"), prefix
        assert not is_bot(prefix.upper() + "1.0"), prefix
    # Prefixes only count at the start of the user agent.
    assert not is_bot("Mozilla/5.0 (Linux; Android 14) Mobile Safari/537.36 scrapy feed")
    assert not is_automation("Mozilla/5.0 (Linux; Android 14) Mobile Safari/537.36 ruby curl/")
    for fragment in BOT_SUBSTRINGS:
        assert is_bot(f"Mozilla/5.0 (X11; Linux) {fragment.title()} Safari/537.36"), fragment
    for fragment in AUTOMATION_SUBSTRINGS:
        user_agent = f"Mozilla/5.0 (X11; Linux) {fragment.title()} Safari/537.36"
        assert is_automation(user_agent), fragment
        assert not is_bot(user_agent), fragment
    assert is_bot("Mozilla/5.0 (compatible)")
    assert not is_bot("Mozilla/5.0 (compatible) Firefox/127.0")
    assert not is_bot(None) and not is_automation(None)
