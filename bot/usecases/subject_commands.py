"""Saved subjects as a person uses them, on every surface: save (from images or a result), list,
show and delete, each in the asker's tenant. A subject from a result takes that result through the
tenant-checked lookup first (bot/usecases/access.py), so only the tenant's own images are saved."""

from __future__ import annotations

from bot.jobs.subjects import SubjectBook
from bot.model.errors import BadInput
from bot.model.jobs import Job
from bot.model.requests import ImageRef
from bot.usecases.actor import Actor, Picture, Reply
from bot.words import (
    NO_SUBJECTS,
    NOT_FOUND,
    SUBJECTS_HEADING,
    subject_deleted,
    subject_line,
    subject_saved,
    subject_shown,
)


async def save(book: SubjectBook, actor: Actor, name: str, refs: list[ImageRef]) -> Reply:
    subject = await book.save(actor.tenant, actor.key, name, refs)
    return Reply(subject_saved(subject.name, len(subject.media)))


async def save_result(
    book: SubjectBook, actor: Actor, name: str, job: Job | None, *, latest_only: bool = False
) -> Reply:
    """`job` as the lookup found it for this actor: None is another tenant's, or gone."""
    if job is None:
        raise BadInput(NOT_FOUND)
    subject = await book.save_from_job(actor.tenant, actor.key, name, job, latest_only=latest_only)
    return Reply(subject_saved(subject.name, len(subject.media)))


async def listing(book: SubjectBook, actor: Actor) -> Reply:
    subjects = await book.all(actor.tenant)
    lines = [subject_line(s.name, len(s.media)) for s in subjects]
    return Reply("\n".join([SUBJECTS_HEADING, *lines]) if lines else NO_SUBJECTS)


async def show(book: SubjectBook, actor: Actor, name: str) -> Reply:
    """The subject's images, shown where it was asked for (everyone there sees them)."""
    subject = await book.get(actor.tenant, name)
    images = await book.images(subject)
    pictures = tuple(
        Picture(f"{subject.name}-{i}.{image.extension}", image.data)
        for i, image in enumerate(images, start=1)
    )
    return Reply(subject_shown(subject.name), private=False, images=pictures)


async def delete(book: SubjectBook, actor: Actor, name: str) -> Reply:
    subject = await book.delete(actor.tenant, name, actor.key, admin=actor.admin)
    return Reply(subject_deleted(subject.name))


async def creator_of(book: SubjectBook, actor: Actor, name: str) -> str:
    """Who saved `name` here (a surface that asks its platform whether someone is an admin asks
    only when it matters)."""
    return (await book.get(actor.tenant, name)).creator
