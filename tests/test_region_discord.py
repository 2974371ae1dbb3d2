"""Edit region on Discord against the fake and the sandbox: the button gives its presser, the image's
requester, the editor's link privately (an ephemeral answer, after a deferral); anyone else in the
server is told it is not theirs, and a link signed for them opens nothing; the form sent from the link
posts the region's result in the image's thread as its next version, every pixel outside the
rectangle the original's."""

from __future__ import annotations

import html
import time
from dataclasses import replace
from pathlib import Path

import httpx

from bot import words
from bot.usecases.region import editor_path
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord_harness import custom_ids, discord_bot
from tests.support.discord import new_result_in, slash_result
from tests.support.region import LINK_RE, check_blended, link_in, send_form

OTHER = "1500000000000000077"
AREA = (300, 150, 700, 450)


async def test_the_button_the_link_and_the_result_in_the_thread(tmp_path: Path) -> None:
    async with FakeDiscord() as fake, discord_bot(tmp_path, fake) as (bot, _):
        result, source = await slash_result(fake, bot, "a lighthouse on a cliff --ar 16:9")
        original = (await bot.engine.result_images(source))[0].data
        custom_id = f"hidream:region:{source.id}"
        assert custom_id in custom_ids(result)

        public = len(fake.visible())
        click = await fake.interact(fake.click_payload(result, custom_id))
        texts = await fake.wait_for(lambda: [t for t in fake.ephemeral_texts() if LINK_RE.search(t)])
        assert fake.acks[click["id"]][0] == 5  # deferred first
        link = link_in(texts[0])
        assert link.startswith(bot.server_url + "/edit/")
        assert len(fake.visible()) == public  # nothing in the channel

        # Someone else in the server: not theirs, no link; and a link signed for them opens nothing.
        await fake.interact(fake.click_payload(result, custom_id, user_id=OTHER))
        await fake.wait_for(lambda: words.REGION_NOT_YOURS in fake.ephemeral_texts())
        assert len([t for t in fake.ephemeral_texts() if LINK_RE.search(t)]) == 1
        signer = await bot.engine.link_signer()
        theirs = bot.server_url + editor_path(signer, replace(source, user_id=OTHER), 0, now=time.time())
        async with httpx.AsyncClient(timeout=30) as http:
            assert (await http.get(theirs)).status_code == 404
        assert (await send_form(theirs, AREA, "a red door")).status_code == 404

        thread = await bot.engine.versions.thread_of("discord", source.id)
        assert thread is not None
        before = set(fake.messages)
        sent = await send_form(link, AREA, "a red door")
        assert sent.status_code == 200 and words.REGION_ACCEPTED in html.unescape(sent.text)
        posted, job = await new_result_in(fake, bot, before)
        assert posted["channel_id"] == thread  # in the image's thread
        assert job.parent_job_id == source.id and job.request.region is not None
        assert (await bot.engine.versions.current("discord", thread)) == job
        result_bytes = (await bot.engine.result_images(job))[0].data
    assert check_blended(original, result_bytes, AREA) > 0.9
