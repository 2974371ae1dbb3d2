"""The command layer: one function per thing a person can do, for every surface.

A use case takes an `Actor` (actor.py: surface, tenant, person, whether they administer the tenant or
moderate where they ask, channel facts) and platform-free arguments, and returns a `Reply` (text,
pictures, private or public) or the job it admitted. Every job it touches comes from the one
tenant-checked `Lookup` (access.py): another tenant's job is "not found". What it makes is charged
to the actor's tenant (make.py, remake.py). Every sentence it says is in bot/words.py.

How to add a use case: write one function here (its words in bot/words.py), then in each surface
that offers it parse the platform's payload into an Actor and arguments, call it, and render its
Reply in the platform's terms (an ephemeral or public answer, a private message, a line on the
console's standard error). The wording test (tests/test_words_across_surfaces.py)
gains a line per surface.

The buttons under a result are decided here too (actions.py: which actions a job offers, their
words and weight); a surface renders that list under its own persistent ids. A new action is one
line there, its words, a handler per surface, and an id in each surface's map (the test
tests/test_result_actions.py fails until every surface has one).

An adapter does only that: parse and render. It decides nothing about who may do what, phrases no
sentence of its own, and reaches no job or store but through these functions.
"""
