"""The region editor's page over HTTP, from the console's `/region last`: the link opens a page that
loads only the bot's own script, style and picture; a tampered, expired or someone else's link opens
nothing and says why in our words; the form refuses a missing rectangle, a small one, an empty or
over-long instruction, a blocked phrase and a form without its link, each with nothing sent or
counted; a good form is admitted once however often it is sent, and its result keeps every pixel
outside the rectangle."""

from __future__ import annotations

import html
import time
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from bot import words
from bot.model.errors import BadInput
from bot.usecases.actor import Actor
from bot.usecases.region import editor_path, region_link
from bot.usecases.remake import remake
from tests.support.console import Console
from tests.support.harness import BotHarness, sandbox_of
from tests.support.region import check_blended, link_in, send_form

AREA = (400, 200, 800, 500)


def shown(page: httpx.Response) -> str:
    return html.unescape(page.text)


async def test_the_page_the_form_and_the_result(tmp_path: Path) -> None:
    console = Console(tmp_path)
    async with BotHarness(tmp_path, {}, [console.factory]) as bot, httpx.AsyncClient(timeout=30) as http:
        (made,) = await console.run(bot, "/hidream a lighthouse on a cliff --ar 16:9 --seed 4")
        original = made.read_bytes()
        await console.run(bot, "/region last")
        answer = console.err.getvalue().splitlines()[-1]
        link = link_in(answer)
        assert link.startswith(bot.server_url + "/edit/") and "30 minutes" in answer

        page = await http.get(link)
        assert page.status_code == 200
        policy = page.headers["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "default-src 'none'" in policy and "unsafe" not in policy
        assert page.headers["Referrer-Policy"] == "no-referrer"
        assert "<script>" not in page.text and "<style>" not in page.text and " style=" not in page.text
        assert 'src="/edit/assets/region.js"' in page.text
        picture = page.text.split('id="picture" src="', 1)[1].split('"', 1)[0]
        image = await http.get(bot.server_url + html.unescape(picture))
        assert image.status_code == 200 and image.content == original
        for name, kind in (("region.js", "text/javascript"), ("region.css", "text/css")):
            asset = await http.get(f"{bot.server_url}/edit/assets/{name}")
            assert asset.status_code == 200 and asset.headers["Content-Type"].startswith(kind)
        assert (await http.get(f"{bot.server_url}/edit/assets/other.js")).status_code == 404

        await console.run(bot, "/policy ban dragon")
        quota = (await bot.engine.quota("console", "local", "local")).used
        before = sandbox_of(bot).submits
        for area, text, message in (
            ((0, 0, 0, 0), "a boat", words.REGION_NO_AREA),
            ((10, 10, 20, 20), "a boat", words.region_too_small(16)),
            ((1000, 500, 1400, 700), "a boat", words.region_outside(1360, 768)),
            (AREA, "   ", words.REGION_NO_TEXT),
            (AREA, "x" * 1001, words.region_text_too_long(1000)),
            (AREA, "a dragon", "dragon"),
        ):
            refused = await send_form(link, area, text)
            assert refused.status_code == 400, (area, text)
            assert message in shown(refused), (message, refused.text)
            assert 'id="region-form"' in refused.text  # the editor again, to try once more
        without = await http.post(
            link, data={"x": "400", "y": "200", "w": "400", "h": "300", "text": "a boat"}
        )
        assert without.status_code == 400 and words.REGION_LINK_INVALID in shown(without)
        assert sandbox_of(bot).submits == before
        assert (await bot.engine.quota("console", "local", "local")).used == quota

        # Sent twice (a double tap, a reload): admitted once.
        for _ in range(2):
            accepted = await send_form(link, AREA, "a hot air balloon in the sky")
            assert accepted.status_code == 200 and words.REGION_ACCEPTED in shown(accepted)
        await bot.runner.wait_idle()
        assert sandbox_of(bot).submits == before + 1
        assert (await bot.engine.quota("console", "local", "local")).used == quota + 1
        source = await bot.engine.job(console.chat.last_job_id or "")  # type: ignore[union-attr]
        assert source is not None
        thread = await bot.engine.versions.thread_of("console", source.id)
        assert thread is not None
        newest = (await bot.engine.versions.live("console", thread))[-1].job
        assert newest.parent_job_id == source.id and newest.request.region is not None
        result = (await bot.engine.result_images(newest))[0].data
        # Rerolled: the same rectangle edited again into the same picture; varied: the whole result.
        actor = Actor("console", "", "local")
        reroll = await remake(bot.engine, actor, newest, vary=False, origin={})
        vary = await remake(bot.engine, actor, newest, vary=True, origin={})
        await bot.runner.wait_idle()
        rerolled = (await bot.engine.result_images(await bot.engine.job(reroll.id)))[0].data  # type: ignore[arg-type]
        assert reroll.request.region == newest.request.region and vary.request.region is None
        assert vary.reference_media == newest.result_media and vary.state == "queued"
        assert (await bot.engine.job(vary.id)).state == "delivered"  # type: ignore[union-attr]
    assert check_blended(original, result, AREA) > 0.9
    assert check_blended(original, rerolled, AREA) > 0.9 and rerolled != result


async def test_a_link_that_is_not_right_opens_nothing(tmp_path: Path) -> None:
    console = Console(tmp_path)
    async with BotHarness(tmp_path, {}, [console.factory]) as bot, httpx.AsyncClient(timeout=30) as http:
        await console.run(bot, "/hidream a red fox in snow")
        await console.run(bot, "/region last")
        link = link_in(console.err.getvalue())
        source = await bot.engine.job(console.chat.last_job_id or "")  # type: ignore[union-attr]
        assert source is not None
        signer = await bot.engine.link_signer()
        fields, exp, sig = link.rsplit("/", 1)[1].split(".")
        someone = replace(source, user_id="someone-else")
        cases = (
            (f"{link[:-1]}{'0' if link[-1] != '0' else '1'}", 403, words.REGION_LINK_INVALID),
            (f"{bot.server_url}/edit/{fields}.{int(exp) + 60}.{sig}", 403, words.REGION_LINK_INVALID),
            (
                bot.server_url + editor_path(signer, source, 0, now=time.time() - 31 * 60),
                410,
                words.REGION_LINK_EXPIRED,
            ),
            # Signed, but for someone who did not ask for the image; and for an image it does not have.
            (bot.server_url + editor_path(signer, someone, 0, now=time.time()), 404, words.REGION_GONE),
            (bot.server_url + editor_path(signer, source, 3, now=time.time()), 404, words.REGION_GONE),
        )
        before = sandbox_of(bot).submits
        for bad, status, message in cases:
            page = await http.get(bad)
            assert page.status_code == status and message in shown(page), (bad, page.text)
            assert 'id="region-form"' not in page.text and 'id="picture"' not in page.text
            sent = await send_form(bad, AREA, "a boat")
            assert sent.status_code == status and message in shown(sent)
        assert sandbox_of(bot).submits == before
        # The link is the requester's alone: nobody else is given one.
        with pytest.raises(BadInput) as refused:
            await region_link(bot.engine, Actor("console", "", "someone-else"), source, now=time.time())
        assert refused.value.user_message == words.REGION_NOT_YOURS
        assert await console.run(bot, "/region") == []
        assert words.REGION_USAGE in console.err.getvalue().splitlines()[-1]


async def test_a_link_whose_edit_failed_may_try_again(tmp_path: Path) -> None:
    console = Console(tmp_path)
    async with BotHarness(tmp_path, {}, [console.factory]) as bot:
        await console.run(bot, "/hidream a lighthouse on a cliff --ar 16:9 --seed 4")
        await console.run(bot, "/region last")
        link = link_in(console.err.getvalue().splitlines()[-1])
        quota = (await bot.engine.quota("console", "local", "local")).used
        before = sandbox_of(bot).submits

        failed = await send_form(link, AREA, f"a boat {words.SANDBOX_FAIL}")
        assert failed.status_code == 200 and words.REGION_ACCEPTED in shown(failed)
        await bot.runner.wait_idle()
        assert sandbox_of(bot).submits == before + 1
        # Failed and given back: the same link may send its form again, and that one is made.
        assert (await bot.engine.quota("console", "local", "local")).used == quota
        for _ in range(2):  # and again sent twice: admitted once
            again = await send_form(link, AREA, "a boat")
            assert again.status_code == 200 and words.REGION_ACCEPTED in shown(again)
        await bot.runner.wait_idle()
        assert sandbox_of(bot).submits == before + 2
        assert (await bot.engine.quota("console", "local", "local")).used == quota + 1
