"""Every sentence a person reads from the chat surfaces, once: every surface and the console show
these words (the console without Markdown's backticks), so every surface says the same thing. The
use cases (bot/usecases/) phrase their replies from here; adapters add no sentence of their own."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

# --- anything a job, image or message names ------------------------------------------------------

NOT_FOUND = "I no longer have that image; run /hidream again."
SORRY = "Something went wrong on my side; nothing was charged. Please try again."
STORE_UNAVAILABLE = (
    "I cannot use my database just now, so nothing was kept and nothing was charged. "
    "Please try again in a minute."
)


def too_old(days: int) -> str:
    """What a person is told when a button or an edit needs an image retention deleted."""
    if days <= 0:
        return "That image is no longer held by the bot; attach it again."
    span = "1 day" if days == 1 else f"{days} days"
    return f"That image is older than {span} and was deleted; run /hidream again."


# --- deleting a result ----------------------------------------------------------------------------

DELETE_REFUSED = "Only the person who asked for these images, or an admin or moderator here, can delete them."

# --- the buttons under a result (bot/usecases/actions.py) --------------------------------------------

ACTION_REROLL = "Reroll"
ACTION_VARY = "Vary (Subtle)"
ACTION_VARY_STRONG = "Vary (Strong)"
ACTION_UPSCALE = "Upscale"
ACTION_ZOOM_15 = "Zoom Out 1.5x"
ACTION_ZOOM_2 = "Zoom Out 2x"
ACTION_PAN_LEFT = "Pan ⬅"
ACTION_PAN_RIGHT = "Pan ➡"
ACTION_PAN_UP = "Pan ⬆"
ACTION_PAN_DOWN = "Pan ⬇"
ACTION_SQUARE = "Make Square"
ACTION_EDIT = "Edit"
ACTION_REGION = "Edit region"
ACTION_UNDO = "Undo"
ACTION_DELETE = "Delete"
ACTION_SUBJECT = "Save as subject"
DELETE_CONFIRM_TITLE = "Delete these images?"
DELETE_CONFIRM_TEXT = "The images and this message are removed from the thread."
DELETE_CONFIRM_YES = "Delete"
DELETE_CONFIRM_NO = "Keep"

# --- saved subjects -------------------------------------------------------------------------------

SUBJECT_USE = "write `@{name}` in a prompt, or `--subject {name}`"
NO_SUBJECTS = "No subjects are saved here yet."
SUBJECTS_HEADING = "Saved subjects:"


def subject_saved(name: str, count: int) -> str:
    return f"Saved subject `{name}` ({count} image(s)). Use it: {SUBJECT_USE.format(name=name)}."


def subject_deleted(name: str) -> str:
    return f"Deleted subject `{name}`."


def subject_line(name: str, count: int) -> str:
    return f"`{name}`: {count} image(s)"


def subject_shown(name: str) -> str:
    return f"Subject `{name}`"


# --- style kits -----------------------------------------------------------------------------------

KIT_REFUSED = "Only the admins of this server or workspace can save, delete or bind style kits."
KIT_USAGE = (
    "Use `kit list`, `kit show <name>`, `kit save <name> --prefix <words> --suffix <words> "
    "--no <words> --subject <name> --ar W:H --model full|dev` (any of them), `kit delete <name>`, "
    "or `kit bind <name>|none` (this channel's kit)."
)
NO_KITS = "No style kits are saved here yet."
KITS_HEADING = "Style kits:"
KIT_EMPTY = "A kit needs at least one of `--prefix`, `--suffix`, `--no`, `--subject` or a flag."
# How `kit show` names a kit's parts.
KIT_PARTS = {
    "prefix": "prefix",
    "suffix": "suffix",
    "negative": "--no",
    "subject": "subject",
    "flags": "flags",
}
KIT_ONE_SUBJECT = "A kit keeps one saved subject: give `--subject` once."
KIT_UNBOUND = "This channel uses no kit now: requests here use the kit they name, if any."


def kit_saved(name: str, version: int) -> str:
    return f"Saved kit `{name}` v{version}. Use it: `--kit {name}`; bind it to a channel: `kit bind {name}`."


def kit_deleted(name: str) -> str:
    return f"Deleted kit `{name}`; results made with it still say which version they used."


def kit_line(name: str, version: int, bound: bool) -> str:
    return f"`{name}` v{version}" + (" (this channel's kit)" if bound else "")


def kit_shown(name: str, version: int, parts: list[tuple[str, str]]) -> str:
    shown = "; ".join(f"{label}: {value}" for label, value in parts)
    return f"Kit `{name}` v{version}: {shown}."


def kit_bound(name: str) -> str:
    return f"Every request in this channel now uses the kit `{name}`; people cannot leave it out."


def no_such_kit(name: str, saved: list[str]) -> str:
    hint = f"Saved here: {', '.join(saved)}." if saved else "None are saved here yet."
    return f"There is no style kit named `{name}` here; nothing was spent. {hint}"


def kit_is_bound(bound: str, asked: str) -> str:
    return (
        f"This channel always uses the kit `{bound}`, so `--kit {asked}` cannot replace it; nothing "
        f"was spent. Leave `--kit` out, or ask in another channel."
    )


def not_a_kit_name(shown: str, rule: str) -> str:
    return f"`{shown}` is not a kit name: use {rule}, e.g. `watercolor`."


def kit_flag_refused(flag: str, allowed: str) -> str:
    return f"`--{flag}` cannot be kept in a kit: a kit keeps {allowed}."


def kit_loose_words(text: str) -> str:
    return f"`{text}` belongs to no flag: put a kit's words after `--prefix` or `--suffix`."


def kit_part_too_long(flag: str, length: int, most: int) -> str:
    return f"`{flag}` is {length} characters long; the most a kit keeps is {most}."


def kit_prompt_too_long(name: str, length: int, most: int) -> str:
    return (
        f"With the kit `{name}` the prompt is {length} characters long; the most allowed is {most}. "
        "Nothing was spent."
    )


def kit_used(name: str | None, version: int | None) -> str:
    """How a result names the style kit it was made with; empty when it used none."""
    return "" if name is None or version is None else f"kit {name} v{version}"


# --- limits and usage -----------------------------------------------------------------------------

LIMITS_REFUSED = "Only the admins of this server or workspace can change limits."
USAGE_REFUSED = "Only the admins of this server or workspace can see someone else's usage."
NOT_IN_A_DM = "Limits are set in a server or workspace, not in a direct message."


def member(user_id: str) -> str:
    return f"<@{user_id}>"


def limit_set(who: str | None, images: int | None) -> str:
    """`who` None: everyone here; `images` None: back to the default limit."""
    subject = "everyone here" if who is None else member(who)
    limit = "the default limit" if images is None else f"{images} images a day"
    return f"Done: {subject} now has {limit}."


def granted(who: str, images: int) -> str:
    return f"Done: {member(who)} got {images} extra images for today."


def reset(who: str) -> str:
    return f"Done: {member(who)} starts today's count from zero."


class Usage(Protocol):
    """What a usage line says (storage/quota.py's QuotaStatus, as the core's policy made it)."""

    @property
    def used(self) -> int: ...
    @property
    def limit(self) -> int: ...
    @property
    def remaining(self) -> int: ...
    @property
    def resets_at(self) -> datetime: ...
    @property
    def now(self) -> float: ...
    @property
    def ceiling(self) -> int | None: ...
    @property
    def tenant_used(self) -> int: ...
    @property
    def budget_usd(self) -> float | None: ...
    @property
    def month_spent_usd(self) -> float: ...
    @property
    def show_spend(self) -> bool: ...


def usage_text(status: Usage) -> str:
    """A person's quota in their tenant, in words."""
    left = max(0, int(status.resets_at.timestamp() - status.now))
    text = (
        f"You have {status.remaining} of {status.limit} images left today "
        f"(used {status.used}); the count resets at 00:00 UTC, in {left // 3600}h {left % 3600 // 60}m."
    )
    if status.ceiling is not None:
        text += f" This server or workspace has made {status.tenant_used} of its {status.ceiling} today."
    if status.show_spend and status.budget_usd is not None:
        text += f" Spend this month: ${status.month_spent_usd:.2f} of ${status.budget_usd:.2f}."
    return text


def usage_of(who: str | None, status_text: str) -> str:
    """A quota status as its owner reads it ("You have ..."), or as an admin reads someone's."""
    return status_text if who is None else f"{member(who)}: " + status_text.replace("You have", "has", 1)


# --- personal settings and a tenant's policy --------------------------------------------------------

POLICY_REFUSED = "Only the admins of this server or workspace can see or change its policy."


# --- projects (cost by channel and project) ------------------------------------------------------


def project_budget_spent(project: str, spent: float, budget: float, cost: float, resets: str) -> str:
    """A request refused because its project's monthly budget would be passed: nothing was spent."""
    return (
        f"The project `{project}` has used ${spent:.2f} of its ${budget:.2f} monthly budget, and this "
        f"request would cost ${cost:.2f}, so it was not made and nothing was spent. Use another "
        f"`--project`, or ask an operator to raise its budget. The budget resets on {resets}."
    )


def channel_project_set(project: str | None) -> str:
    if project is None:
        return "This channel has no default project now: requests here count under the project they name, if any."
    return (
        f"Requests in this channel now count under the project `{project}` unless they name another "
        "with `--project`."
    )


def channel_project_shown(project: str | None) -> str:
    return f" This channel's default project: {'`' + project + '`' if project else 'none'}."


def export_prompts_set(withheld: bool) -> str:
    if withheld:
        return "Prompts of this server or workspace are now withheld from the operators' audit export."
    return "Prompts of this server or workspace are now included in the operators' audit export."


# Where a surface can hide an image behind a spoiler, an allowed flagged image shows only in an
# age-restricted channel; where it cannot, "spoiler" is no choice.
SPOILERS_NOTE = " Flagged images are shown only in age-restricted channels; elsewhere they get a spoiler."
NO_SPOILERS = "Spoilers are not available here: use `policy nsfw block`, `allow` or `default`."


def subject_in_prompt(make: str) -> str:
    """How a saved subject is used, for a surface's help; `make` is how a prompt starts there."""
    return f"then use it: `{make}@mascot surfing a wave` or `{make}surfing --subject mascot`"


# --- images and messages a person points at ---------------------------------------------------------

NO_IMAGE = "That message has no image I can edit: use it on a message with a PNG, JPEG, WebP or GIF attached."
MESSAGE_GONE = "That message is gone; nothing to edit."
REPLIED_GONE = "The message you replied to is gone; nothing to edit."
REPLIED_NO_IMAGE = "The message you replied to has no image: reply to an image and say what to change."
WHICH_MESSAGE = "I could not tell which message that was; try again."
FORM_OUT_OF_DATE = "This form is out of date; start again from the button or the menu."
NOT_A_VERSION = "That image is not a version of a thread I know of, so there is nothing to undo."
SAVE_SUBJECT_HOW = "Attach 1 to 4 images to `save subject <name>`, or say it in a result's thread."
CANNOT_POST = "I cannot post in this channel. Invite me first: `/invite @HiDream`."
PRIVATE_NOTICE = "You chose private results: I am making this in our direct messages, where it will arrive."
APP_REMOVED = "This workspace removed the HiDream app, so the image was not made; your quota was given back."

_MIB = 1_048_576
# What names a file without a name of its own, and a type no one gave.
AN_ATTACHMENT = "the attachment"
A_FILE = "file"
UNKNOWN_TYPE = "unknown type"


def too_many_images(count: int, most: int) -> str:
    return f"{count} images are attached; the most I can use is {most}."


def not_an_image(name: str, kind: str) -> str:
    return f"`{name}` is not an image ({kind}): attach a PNG, JPEG, WebP or GIF file."


def image_too_large(name: str, size: int, most: int) -> str:
    return f"`{name}` is {size / _MIB:.1f} MB; the most allowed is {most / _MIB:.0f} MB."


def file_unavailable(name: str) -> str:
    return f"The file `{name}` is not available to the bot."


def file_without_link(name: str) -> str:
    return f"The file `{name}` has no download link the bot can use."


# --- the console's commands -------------------------------------------------------------------------

EDIT_EXAMPLE = (
    "Say what to change, e.g. `/edit last make it night` (or `/edit <job id>#2 ...` for its second image)."
)
NOTHING_MADE_YET = "There is no finished image yet: make one first, e.g. /hidream a red fox in snow"
SUBJECT_USAGE = (
    "Usage: /subject save <name> <image files | job id | last>..., /subject list, "
    "/subject show <name>, /subject delete <name>"
)


def choose_image(job: str, count: int) -> str:
    if count == 1:
        return f"{job} has only one image: leave out the #, e.g. `/edit {job} make it blue`."
    return f"{job} has {count} images: choose #1 to #{count}, or #all."


def no_such_target(target: str) -> str:
    """The console's "not found": `target` names no file, and no finished job of the asker's."""
    return f"{target!r} is neither an image file nor a finished job: give a path, a job id, or `last`."


def no_chain(job: str) -> str:
    return f"{job} is not a version of any chain yet."


# --- a job that failed: every failure gives the images back to the requester's quota ----------------

FAILED_INSIDE = "Something went wrong inside the bot."
FAILED_NOT_RESENT = "The bot restarted while sending this request, so it was not sent again."
FAILED_NOT_POSTED = "The image was made but could not be posted here."
FAILED_SLOW_DOWNLOAD = "The finished image took too long to download from the provider."
FAILED_DOWNLOAD = "The finished image could not be downloaded from the provider."
BLOCKED = (
    "Your prompt contains a word or phrase this server's or workspace's admins have blocked. "
    "Rephrase it and try again; nothing was spent."
)


def failed_took_too_long(minutes: int) -> str:
    return f"The image took longer than {minutes} minutes, so the bot gave up."


def failed_no_image(provider: str) -> str:
    return f"{provider} finished but sent no image."


def failed_at(provider: str) -> str:
    return f"{provider} could not make the image."


def failed(reason: str) -> str:
    """What the requester of a failed job is told: why, and that its images were given back (a failed
    job's reservation is released in the same transaction that fails it)."""
    reason = reason.strip()
    return f"{reason}{'' if reason.endswith(('.', '!', '?')) else '.'} Your quota was given back."


# --- how a job is doing: the lines a request's message shows while it is made -----------------------

# The first line of a request's message, before it is admitted.
CHECKING = "Checking the request…"
# The last step's word: a chat surface uploads the images, the console saves them as files.
UPLOADING = "Uploading"
SAVING = "Saving"
# What the requester did, before their prompt on the request's status message.
ASKED_FOR = "asked for"
ASKED_TO_EDIT = "asked to edit"
ASKED_TO_VARY = "asked for a variation of"
REROLLED = "rerolled"


def progress(stage: str, elapsed: float, queue_position: int | None, *, delivering: str = UPLOADING) -> str:
    """A job's progress line: `stage` is "queued", "running" or "delivering"."""
    secs = int(elapsed)
    if stage == "queued":
        pos = f", position {queue_position} in the queue" if queue_position is not None else ""
        return f"Queued{pos} ({secs}s)"
    if stage == "running":
        return f"Generating… ({secs}s)"
    return f"{delivering}… ({secs}s)"


def images(count: int) -> str:
    return "1 image" if count == 1 else f"{count} images"


def done_in_thread(count: int, held: int) -> str:
    """The status line once the images are in the result's thread; `held`: kept back by the policy."""
    line = f"Done: {count} image{'s' if count != 1 else ''} in the thread."
    if held:
        line += f" {held} flagged as possibly sensitive and held back (this workspace's policy)."
    return line


def not_done(reason: str) -> str:
    return f"Not done: {reason}"


def reencoded(count: int, limit_mb: float) -> str:
    return f"{images(count)} re-encoded to fit this channel's {limit_mb:.0f} MB upload limit."


def spoilered(count: int) -> str:
    return f"{images(count)} flagged as possibly sensitive, hidden behind a spoiler."


def withheld(count: int) -> str:
    return f"{images(count)} flagged as possibly sensitive and not posted outside age-restricted channels."


# --- forms: editing an image, naming a subject -------------------------------------------------------

EDIT_MENU = "Edit with HiDream"
EDIT_FIELD = "What should change?"
# An example to follow in the empty field: what to change, a flag with it.
EDIT_PLACEHOLDER = "make the sky purple --seed 7"
EDIT_SUBMIT = "Edit"
CANCEL = "Cancel"
WHICH_IMAGE = "Which image?"
ALL_IMAGES = "All of them together"
SUBJECT_FORM = "Save as subject"
SUBJECT_FIELD = "Name (letters, digits, - or _)"
SUBJECT_PLACEHOLDER = "mascot"
SUBJECT_SUBMIT = "Save"


def image_choice(number: int) -> str:
    return f"Image {number}"


# --- a person's home page (a surface that has one) ---------------------------------------------------

HOME_TITLE = "Your HiDream"
HOME_RECENT = "Recent results"
HOME_SUBJECTS = "Saved subjects"
HOME_DEFAULTS = "Your defaults"
HOME_NOTHING_YET = "Nothing yet. Type `/hidream a red fox in snow` in any channel."
HOME_NO_SUBJECTS = "You have saved no subjects here. Save a result with its *Save as subject* button."
HOME_SUBJECT_USE = "Use one in a prompt as `@name` or `--subject name`."
HOME_NO_DEFAULTS = (
    "None. Set some with `/hidream settings --ar 16:9 --n 2` (`--private on` sends results to you alone)."
)
HOME_DEFAULTS_NOTE = "Flags you type win; `/hidream settings reset` clears them."
HOME_OPEN = "Open"
HOME_NO_LINK = "no link"
HOME_RECENTLY = "recently"
HOME_AT_MIDNIGHT = "at 00:00 UTC"
HOME_STATES = {"delivered": "done", "failed": "failed", "completed": "delivering", "delivering": "delivering"}
HOME_IN_PROGRESS = "in progress"
HOME_DELETED = "deleted"


def home_yours(names: str) -> str:
    return f"Yours: {names}"


def home_quota(remaining: str, limit: int, used: int, when: str) -> str:
    """`remaining` as the surface marks it up; `when`: the surface's own way of showing a time."""
    return f"{remaining} of {limit} images left today (used {used}); the count starts again {when}."


def home_tenant_made(used: int, ceiling: int) -> str:
    return f"This workspace has made {used} of its {ceiling} today."


def home_others_subjects(count: int) -> str:
    return f"{count} more saved here by others: `/hidream subjects` lists them."


# --- the console ---------------------------------------------------------------------------------------

EDIT_USAGE = "Usage: /edit <image file | job id | last> <what to change>"
VARY_USAGE = "Usage: /vary <job id | last>"
UPSCALE_USAGE = "Usage: /upscale <job id | last>"
ZOOM_USAGE = "Usage: /zoom 1.5|2 <job id | last>"
PAN_USAGE = "Usage: /pan left|right|up|down <job id | last>"
SQUARE_USAGE = "Usage: /square <job id | last>"
REGION_USAGE = "Usage: /region <job id | last>"


def unknown_command(command: str) -> str:
    return f"Unknown command {command}: /help lists them."


def did_you_mean(line: str, *, instead_of: str | None) -> str:
    """What the console answers a line that is no command: the line it may have meant. `instead_of`:
    the unknown command typed; None when the line named none (it did not start with /)."""
    if instead_of is None:
        return f"Commands start with /: did you mean `{line}`? (/help lists them)"
    return f"Unknown command {instead_of}: did you mean `{line}`?"


def stopped(unfinished: int) -> str:
    """The console's last line when Ctrl-C stops it."""
    if not unfinished:
        return "Stopped."
    them = "1 unfinished job resumes" if unfinished == 1 else f"{unfinished} unfinished jobs resume"
    return f"Stopped: {them} when the bot next starts with this database."


# The shared sentences name where a person asks as a server's or workspace's; on the console, whose
# user is its own operator, they say this console. Whole sentences first, then the place's names.
_AT_THE_CONSOLE = {
    # (BLOCKED's own words on the console)
    "this server's or workspace's admins have blocked": "this console's policy blocks (/policy lists them)",
    "This server or workspace has": "This console has",
    "this server or workspace": "this console",
    "this server's or workspace's": "this console's",
    "this server's": "this console's",
    "this workspace's": "this console's",
}


def at_the_console(text: str) -> str:
    """A shared sentence as the console says it: its place is this console, and no Markdown marks."""
    for shared, console in _AT_THE_CONSOLE.items():
        text = text.replace(shared, console)
    return text.replace("`", "")


def console_greeting(provider: str, server_url: str | None) -> str:
    server = f", its HTTP server at {server_url}" if server_url else ""
    return (
        f"hidream-bot console on the {provider} provider{server}. "
        "Try: /hidream a red fox in snow --ar 16:9   (/help for more, Ctrl-D to quit)"
    )


def accepted(mode: str, count: int, seed: int | None) -> str:
    return f"accepted: {mode}, {count} image(s), seed {seed}"


def accepted_variation(of: str, seed: int | None) -> str:
    return f"accepted: a variation of {of}, seed {seed}"


def accepted_tool(tool: str, of: str, seed: int | None) -> str:
    """The console's answer to a toolbox command: `tool` is the button's label."""
    return f"accepted: {tool} of {of}, seed {seed}"


# --- the toolbox (bot/usecases/toolbox.py) ------------------------------------------------------------

# What the provider is asked, each followed by the scene as the image was first asked for.
UPSCALE_INSTRUCTION = (
    "Render this exact image again at a higher resolution. Change nothing: keep every subject, colour, "
    "shape, position and detail, only sharper."
)
OUTPAINT_INSTRUCTION = (
    "Fill the flat grey area around the picture so that the scene continues naturally into it, with "
    "the same style, light and perspective. Do not change anything in the existing picture."
)
SCENE = "The scene:"
VARIED = "asked for a strong variation of"
UPSCALED = "asked to upscale"
EXTENDED = "asked to extend"


def canvas_too_large(width: int, height: int, most: int) -> str:
    return (
        f"The larger picture would be {width}x{height} pixels; the longest side it may have is {most}. "
        "Zoom or pan a smaller image."
    )


def canvas_too_narrow(width: int, height: int) -> str:
    return (
        f"The larger picture would be {width}x{height} pixels, narrower than the 1:4 to 4:1 shapes "
        "providers make. Pan the other way, or make it square first."
    )


def tool_costs(tool: str, cost: float, usual: float) -> str:
    """Said before the job is charged, when a tool costs another amount than an image does."""
    return f"{tool} costs ${cost:.3f} here (an image usually ${usual:.3f})."


def saved_files(count: int, provider: str, seed: int | None, tier: str, sizes: str, job: str) -> str:
    return (
        f"done: {count} image(s) by {provider}, seed {seed}, {tier} model, "
        f"{sizes}. Edit with: /edit {job} <what to change>"
    )


def editing_first_of(job: str, count: int) -> str:
    return (
        f"editing image 1 of {count}; another: /edit {job}#2 ..., all {count} combined: /edit {job}#all ..."
    )


# --- the help, as each kind of surface asks for things ------------------------------------------------
# Each names every feature with an example to copy, in the surface's own commands; the provider in
# the examples is one the surface names (this module names none).


def help_with_options(example_provider: str) -> str:
    """For a surface of slash commands with typed options and menus, within one message of 2000 characters."""
    return (
        "**HiDream: make and edit images** (only you see this)\n"
        "**Make:** `/hidream prompt:a red fox in snow`, with options: `aspect:16:9`, `size`, `count:2`, "
        "`model:dev` (faster), `seed`, `steps`, `guidance`, `format`.\n"
        "**Edit:** `/hidream prompt:make it blue` with an image in `image` (2-4 are combined), "
        "reply to an image and mention me, or **Apps > Edit with HiDream**. "
        "In a result's thread, just type the next change.\n"
        "**Saved subjects:** `/hidream-subject save name:mascot` with 1-4 images (or **Save as subject** "
        f"under a result), {subject_in_prompt('/hidream prompt:')} (or the `subject` option). "
        "`/hidream-subject list`, `show`, `delete`.\n"
        "**Versions:** in a result's thread, `undo` (or **Undo**) goes back one, `history` lists them.\n"
        "**Toolbox** under a result: **Upscale** (2048 px; or `upscale:True`), **Zoom Out** 1.5x/2x, "
        "**Pan** ⬅➡⬆⬇, **Make Square**, **Vary (Strong)** (new seed), **Remix** (change the prompt), "
        "**Edit region** (draw the area).\n"
        "**Your defaults:** `/hidream-settings aspect:16:9 count:2 private:True` (results only you see); "
        "no options shows them.\n"
        "**Projects:** `--project <tag>` in the prompt counts its cost under a project.\n"
        f"**Providers:** `provider:{example_provider}` picks one.\n"
        "**Style kits:** `kit:house` applies one; admins: `/hidream-kit save`, `bind` (this channel's kit).\n"
        "**Sets:** `a {red, blue} fox` one image per choice, `--repeat 3` (12 at most). "
        "**Drafts:** `--draft` (Dev model), then **Final**.\n"
        "**Limits:** `/hidream-usage`: what you have left today.\n"
        "**Admins** (Manage Server): `/hidream-admin user-limit`, `server-limit`, `grant`, `reset`, `usage`; "
        "`/hidream-policy action:ban value:some phrase` blocks a phrase; `nsfw`, `tier`, `provider` set "
        "defaults; `export-prompts` (on, off): prompts in the audit export; `credentials-prompt` (on, off): "
        "in images' content credentials; `project` (a tag, or default): this channel's project; "
        "`review` (`@role to #queue`): results wait for a reviewer's approval; `show`, `reset`."
    )


def help_with_flags(example_provider: str) -> str:
    """For a surface of one slash command with flags, mentions in a result's thread, and a message shortcut."""
    return (
        "*Make:* `/hidream a red fox in snow --ar 16:9 --n 2`; results land in a thread under your request. "
        "Flags: `--ar W:H`, `--size WxH` or a preset, `--seed N`, `--steps N`, `--cfg X`, `--n 1-4`, "
        "`--format png|jpeg|webp`, `--model full|dev`, `--keep-aspect`, `--upscale`. A link to an image in the prompt "
        "is used as a reference.\n"
        "*Edit:* in a result's thread, mention the bot with what to change (`@HiDream make it blue`), or "
        "attach images to a mention; or use the message shortcut *Edit with HiDream*.\n"
        "*Saved subjects:* mention the bot with images attached and `save subject mascot` (or say it in a "
        f"result's thread to save its latest image), {subject_in_prompt('/hidream ')}. "
        "`/hidream subject list`, `/hidream subject show mascot`, "
        "`/hidream subject delete mascot`.\n"
        "*Versions:* every result in a thread is a version (v1, v2, ...). In the thread, `@HiDream undo` goes "
        "back one (your next mention edits it) and `@HiDream history` lists them; *Vary* under a result makes "
        "a variation of it (same prompt, new seed); *Edit* or *Vary* on an older version continues from it.\n"
        "*Toolbox* under a result: *Upscale* (2048 px, full model; or `--upscale`), *Zoom Out 1.5x/2x*, "
        "*Make Square*, *Vary (Strong)* (same prompt, new seed), *Remix* (the prompt and flags in a form to "
        "change, with or without the image), and *Pan* left, right, up or down in the menu beside them.\n"
        "*Your defaults:* `/hidream settings --ar 16:9 --n 2 --model dev --format webp --private on` "
        "(flags you type still win; `--private on` sends results to you in a DM); `/hidream settings` shows "
        "them, `/hidream settings reset` clears them.\n"
        f"*Providers:* `/hidream a red fox --provider {example_provider}` picks one of those the bot is configured with; "
        "otherwise the first that can make it (the result says which).\n"
        "*Sets and drafts:* `/hidream a {red, blue} fox` makes one image per choice, `--repeat 3` three "
        "(at most 12; over 4 you confirm with a button first); `--draft` is quick on the Dev model, then "
        "*Final* under it renders it in full, same seed. `--no <words>` where a provider takes a negative "
        f"prompt. {PROVIDERS_HINT}\n"
        "*Limits:* `/hidream usage` shows what you have left today. Admins: `/hidream limit @user N|off`, "
        "`/hidream limit workspace N|off`, `/hidream grant @user N`, `/hidream reset @user`, "
        "`/hidream usage @user`.\n"
        "*Admins' policy:* `/hidream policy ban <phrase>` / `unban <phrase>`, "
        "`/hidream policy nsfw block|allow|default`, `/hidream policy tier full|dev|default`, "
        "`/hidream policy provider <name>|default`, `/hidream policy credentials-prompt on|off` (the prompt "
        "written into each image's content credentials), `/hidream policy reset`; `/hidream policy` shows it.\n"
        "*Projects:* `--project <tag>` counts a request's cost under a project; admins set a channel's "
        "default with `/hidream policy project <tag>|default`, and keep prompts out of the operators' "
        "audit export with `/hidream policy export-prompts off`.\n"
        "*Style kits:* `--kit house` applies one (a channel's bound kit always applies). Admins: "
        "`/hidream kit save house --prefix soft watercolor of --suffix pastel --ar 3:2`, "
        "`/hidream kit bind house|none`, `/hidream kit delete house`; `/hidream kit list`, `show house`.\n"
        "*Approvals:* `/hidream policy review @group to #queue` (or `@ann @bob`, in their DMs): results in "
        "this channel go to their requester alone until a reviewer approves them; `review off` ends it."
    )


# The word that makes the sandbox provider fail a job on purpose (bot/providers/sandbox/jobs.py).
SANDBOX_FAIL = "sandbox-fail"


def help_at_the_console(example_provider: str, *, sandbox: bool = False) -> str:
    """The console's `/help`; `sandbox`: the sandbox provider runs, so its word for a failure is named."""
    trying = (
        f"\nTrying:    {SANDBOX_FAIL} in a prompt makes the sandbox fail that job, to see how a failure "
        "looks\n           (e.g. /hidream a fox sandbox-fail): nothing is spent"
        if sandbox
        else ""
    )
    return f"""Make:      /hidream <prompt> [flags]   e.g. /hidream a red fox in snow --ar 16:9 --n 2
  flags:   --ar W:H | --size WxH|preset, --seed N, --steps N, --cfg X, --n 1-4,
           --format png|jpeg|webp, --model full|dev, --keep-aspect, --upscale, --provider NAME, --subject <name>
Edit:      /edit <image file | job id | last> <what to change> [flags]   e.g. /edit last make it blue
           a job's second image: /edit <job id>#2 ...  (of several images the first by default;
           #all combines them: /edit last#all the same fox in autumn)
Subjects:  /subject save <name> <image files | job id | last>...   e.g. /subject save mascot fox1.png fox2.png
           {subject_in_prompt("/hidream ")} (repeatable)
           /subject list | /subject show <name> | /subject delete <name>
Versions:  /undo [job id | last]      go back one version: the next `/edit last` edits the one before
           /history [job id | last]   list the versions of that chain (v1, v2, ...) with their prompts
           /vary <job id | last>      a variation: the image as reference, same prompt, new seed
Toolbox:   /upscale <job id | last>   the image again at 2048 pixels on its long side (full model)
           /zoom 1.5|2 <job id | last>   zoom out: the picture in the middle of a larger scene
           /pan left|right|up|down <job id | last>   a third more scene on that side
           /square <job id | last>    the picture centred in a square, the sides filled in
           /region <job id | last>    a link to a page where you drag a rectangle and say what to change
           /remix <job id | last> <prompt and flags>   made again as changed, from the image
           (--fresh: from the text alone); /remix <job id | last> alone prints its prompt and flags
Sets:      /hidream a {{red, blue}} fox in {{snow, rain}}   one image per choice (braces multiply, at most 12)
           --repeat N (1-8): the same request N times, new seeds; a set of more than 4 needs --yes
Drafts:    --draft makes it quickly on the Dev model; /final <job id | last> renders it on the full model
           with the same prompt, flags and seed
Knobs:     --no <words> (negative prompt), --steps, --cfg, --format: where the provider documents them;
           hidream-bot providers prints what each provider takes (modes, models, sizes, knobs, price)
Defaults:  HIDREAM_CONSOLE_DEFAULTS, e.g. "--ar 16:9 --n 2 --model dev --format webp" (flags you type win)
Providers: --provider NAME picks one of those configured, e.g. /hidream a red fox --provider {example_provider}
Limits:    /quota   how many images are left today
Policy:    /policy shows it; /policy ban <phrase> | unban <phrase> | tier full|dev|default
           | provider <name>|default | export-prompts on|off | project <tag>|default
           | credentials-prompt on|off | reset
           (the console's user is its operator)
Projects:  --project <tag> counts a request's cost under a project (`hidream-bot report --by project`)
Kits:      /kit save <name> --prefix <words> --suffix <words> --no <words> --subject <name> [flags]
           /kit list | /kit show <name> | /kit delete <name> | /kit bind <name>|none
           --kit <name> applies one (a bound kit applies to every request){trying}
/help      this text (Ctrl-D quits; Ctrl-C stops at once, and unfinished jobs resume at the next start)"""


# --- commands and their options, as a command menu describes them (each within 100 characters) --------

COMMANDS = {
    "hidream": "Make an image with HiDream-O1, or attach images to edit them (prompt:help for help)",
    "hidream-usage": "How many images you have left today",
    "hidream-help": "How to make, edit and vary images, save subjects, set defaults",
    "hidream-admin": "Daily image limits and grants for this server's members (needs Manage Server)",
    "hidream-admin usage": "Show a member's usage today",
    "hidream-admin user-limit": "Set a member's daily limit (leave images empty to clear)",
    "hidream-admin server-limit": "Set this server's daily limit (empty clears it)",
    "hidream-admin grant": "Give a member extra images for today",
    "hidream-admin reset": "Reset a member's usage for today",
    "hidream-subject": "Saved subjects: 1-4 images under a name; use with @name in a /hidream prompt",
    "hidream-subject save": "Save 1-4 attached images under a name",
    "hidream-subject list": "The subjects saved here",
    "hidream-subject show": "Post a subject's images",
    "hidream-subject delete": "Delete a subject (its creator or a server manager)",
    "hidream-settings": "Your defaults in this server (options you type still win); no options shows them",
    "hidream-policy": "This server's image policy (needs Manage Server)",
    "hidream-kit": "Style kits: a prompt prefix and suffix, flags, a subject; use with kit: in /hidream",
    "hidream-kit save": "Save a kit, or its next version (needs Manage Server)",
    "hidream-kit list": "The kits saved here",
    "hidream-kit show": "What a kit holds",
    "hidream-kit delete": "Delete a kit; results made with it keep saying so (needs Manage Server)",
    "hidream-kit bind": "Make every request in this channel use a kit; none unbinds (needs Manage Server)",
}
_SUBJECT_NAME = "The subject's name, as in /hidream-subject list"
_ANOTHER_IMAGE = "Another image of it (optional)"
_KIT_NAME = "The kit's name, as in /hidream-kit list"
OPTIONS = {
    "hidream-admin usage": {"member": "Whose usage to show"},
    "hidream-admin user-limit": {
        "member": "Whose limit to set",
        "images": "Images per UTC day; empty: back to the default",
    },
    "hidream-admin server-limit": {
        "images": "Images per UTC day for the whole server; empty: no server limit"
    },
    "hidream-admin grant": {"member": "Who gets the extra images", "images": "How many more, for today only"},
    "hidream-admin reset": {"member": "Whose usage today goes back to zero"},
    "hidream-subject save": {
        "name": "Letters, digits, - or _ (at most 32), e.g. mascot; then write @mascot in a prompt",
        "image": "An image of the subject",
        "image2": _ANOTHER_IMAGE,
        "image3": _ANOTHER_IMAGE,
        "image4": _ANOTHER_IMAGE,
    },
    "hidream-subject show": {"name": _SUBJECT_NAME},
    "hidream-subject delete": {"name": _SUBJECT_NAME},
    "hidream-settings": {
        "aspect": "Default aspect ratio",
        "size": "Default preset size",
        "model": "Default model: full (best) or dev (faster)",
        "format": "Default file format",
        "count": "Default number of images",
        "private": "True: results only you can see (ephemeral, no thread)",
        "reset": "True: clear all your defaults here",
    },
    "hidream-kit save": {
        "name": "Letters, digits, - or _ (at most 32), e.g. watercolor",
        "prefix": "Words put before every prompt",
        "suffix": "Words put after every prompt",
        "negative": "What images should not show, where the provider takes a negative prompt",
        "subject": "A saved subject whose images every request uses",
        "flags": "Default flags, e.g. --ar 3:2 --model full (flags people type win)",
    },
    "hidream-kit show": {"name": _KIT_NAME},
    "hidream-kit delete": {"name": _KIT_NAME},
    "hidream-kit bind": {"name": "The kit's name, or none to unbind this channel"},
    "hidream-policy": {
        "action": "show, ban/unban, nsfw, tier, provider, export-prompts, project, credentials-prompt, review, reset",
        "value": "A phrase, spoiler|block|allow|default, full|dev|default, a provider, on|off, a tag, reviewers",
    },
}


def make_options(most_images: int, example_provider: str) -> dict[str, str]:
    """The options of the command that makes and edits images."""
    return {
        "prompt": "What the image should show, or what to change in the attached image; help shows the help",
        "image": "An image to edit (add image2-image4 to combine several)",
        "image2": "A second image: two or more are combined (personalization)",
        "image3": "A third image to combine",
        "image4": "A fourth image to combine",
        "aspect": "Aspect ratio (width:height), sized to about one megapixel; or use size",
        "size": "A preset size (width x height), instead of an aspect ratio",
        "model": "Model tier: full (best quality) or dev (faster)",
        "format": "File format of the result",
        "seed": "Same seed and prompt give the same image; empty: a random seed",
        "steps": "Denoising steps: more is slower and finer (dev: at most 28)",
        "guidance": "How closely to follow the prompt (higher: more literal)",
        "count": f"How many images (1-{most_images})",
        "keep_aspect": "When editing one image, keep its aspect ratio",
        "upscale": "The largest size the provider makes (2048 on the long side), on the full model",
        "subject": "Saved subjects to use as references, comma-separated (or write @name in the prompt)",
        "provider": f"A provider this bot is configured with, by name (e.g. {example_provider}); "
        "default: the first that can",
        "project": "The project this counts under (letters, digits, - or _); default: the channel's",
        "kit": "A style kit, by name (/hidream-kit list); a channel's own kit always applies",
    }


# --- saved subjects: storage bounds ------------------------------------------------------------------


def subject_taken(name: str) -> str:
    return (
        f"A subject named `{name}` already exists here (names ignore case): pick another name, or delete "
        "that one first."
    )


def subjects_full(limit: int) -> str:
    return (
        f"Nothing was saved: {limit} subjects are saved here, the most the bot keeps for one place. "
        "Delete one that is no longer needed, then save again."
    )


def subject_storage_full(used_mb: float, budget_mb: int, adding_mb: float | None = None) -> str:
    adding = "" if adding_mb is None else f", and these images take {adding_mb:.1f} MB more"
    return (
        f"Nothing was saved: the subjects saved here take {used_mb:.1f} MB of their {budget_mb} MB{adding}. "
        "Delete a subject that is no longer needed, or save fewer or smaller images."
    )


# --- settings: what `hidream-bot check` and a refused start say about a value (bot/model/config.py) ------
# Each follows the variable's name ("HIDREAM_HTTP_PORT: must be a whole number"); none repeats a
# value, which may be a secret.

SETTING_NOT_TRUE_OR_FALSE = "must be true or false (also yes/no, on/off, 1/0)"
SETTING_NOT_WHOLE = "must be a whole number, e.g. 25"
SETTING_NOT_NUMBER = "must be a number, e.g. 30 or 2.5"
SETTING_NOT_TEXT = "must be text"
SETTING_NOT_ACCEPTED = "is not a value this setting takes (the settings reference lists what it takes)"


def setting_at_least(least: object) -> str:
    return f"must be {least} or more"


def setting_more_than(least: object) -> str:
    return f"must be more than {least}"


def setting_at_most(most: object) -> str:
    return f"must be {most} or less"


def setting_less_than(most: object) -> str:
    return f"must be less than {most}"


def setting_one_of(choices: str) -> str:
    """`choices` as the setting lists them, e.g. "'text' or 'json'"."""
    return f"must be {choices}"


def invalid_settings(problems: list[str]) -> str:
    """One line for every bad value at once, each "VARIABLE: what is wrong"."""
    return "invalid setting: " + "; ".join(problems)


# What a chat platform's settings must look like (each after its variable's name).
DISCORD_TOKEN_SHAPE = (
    "is not a bot token: copy it from the Developer Portal (your app, Bot, Reset Token); it is three "
    "parts joined by dots, without a `Bot ` in front"
)
DISCORD_TOKEN_PREFIXED = "give the token alone, without the `Bot ` in front"


def not_a_guild_id(value: str) -> str:
    return (
        f"{value!r} is not a server id: comma-separated numbers, as Copy Server ID gives them "
        "(with Developer Mode on), e.g. 123456789012345678"
    )


def surface_in_part(surface: str, given: list[str], starts_with: str) -> str:
    """A chat surface whose credentials are set in part: `starts_with` says which together start it."""
    verb, them = ("is", "it") if len(given) == 1 else ("are", "them")
    return (
        f"{', '.join(given)} {verb} set, but {surface} starts only with {starts_with}: set the rest, "
        f"or unset {them} to run without {surface}"
    )


# --- `hidream-bot check`: where the database lives ---------------------------------------------------

DB_CONNECT_SECONDS = 5


def db_is_a_folder(path: object) -> str:
    return f"{path} is a folder: give the path of a database file"


def db_folder_missing(folder: object) -> str:
    return f"the folder {folder} does not exist"


def db_folder_not_a_folder(folder: object) -> str:
    return f"{folder} is not a folder"


def db_not_writable(folder: object, why: str | None = None) -> str:
    return f"the bot may not write in {folder}" + (f" ({why})" if why else "")


def db_reached(label: str) -> str:
    return f"{label} (connected)"


def db_unreachable(label: str, why: str) -> str:
    return f"could not connect to {label} (tried for at most {DB_CONNECT_SECONDS} s): {why}"


DB_REFUSED = "nothing listens at that address and port"
DB_NO_ANSWER = "no answer"
DB_NO_SUCH_HOST = "the host name does not resolve"
DB_WRONG_LOGIN = "the user name or password is wrong"
DB_NO_SUCH_DATABASE = "the database does not exist"
DB_NOT_A_URL = "the URL cannot be read (postgresql://user:password@host:port/dbname)"


def db_said(message: str) -> str:
    return f"PostgreSQL said: {message}"


# --- amounts an admin or an operator types (bot/jobs/quota_policy.py, `hidream-bot quota`) -------------


def money(usd: float) -> str:
    """Dollars as people write them: $3.00, $1,250.50."""
    return f"${usd:,.2f}"


def images_out_of_range(images: int, most: int) -> str:
    return f"{images} is out of range: use a whole number from 0 to {most:,}."


def budget_out_of_range(usd: float, most: float) -> str:
    if usd < 0:  # never "$-3.00"
        return f"{usd:g} is out of range: a budget is 0 or more dollars a month, up to {money(most)} (e.g. 25 or 12.50)."
    return f"{money(usd)} is out of range: a budget is 0 to {money(most)} a month."


def not_a_whole_number(text: str) -> str:
    return f"{text!r} is not a whole number (e.g. 25)"


def not_dollars(text: str) -> str:
    return f"{text!r} is not an amount of dollars (e.g. 25 or 12.50)"


# --- sets, drafts and provider knobs ------------------------------------------------------------------

ACTION_FINAL = "Final"
ACTION_CONFIRM_SET = "Make them"
DRAFT_IS_DEV = "`--draft` makes the image on the Dev model: leave out `--model full`, or leave out `--draft`."
EMPTY_CHOICE = (
    "A choice in `{...}` is empty: write the choices with commas between them, e.g. `a {red, blue} fox`."
)
UNBALANCED_BRACES = "A `{` or `}` is not closed: write choices as `{red, blue}`, one pair of braces each."
NOT_A_DRAFT = "That image is not a draft: Final renders a `--draft` image on the full model."
FINAL_USAGE = "Usage: /final <job id | last>"
SET_EXPIRED = "That set is no longer waiting: it was confirmed already, or waited too long. Ask again if it was not made."
SET_NOT_YOURS = "Only the person who asked for this set can confirm it."
ONE_AT_A_TIME = (
    "Sets (`--repeat`, `{a, b}` choices) are made from a new command, e.g. `/hidream a fox --repeat 3`; "
    "here one image is made at a time: leave out `--repeat`."
)
PROVIDERS_HINT = "What each provider offers (models, sizes, knobs, price): `hidream-bot providers`."


def set_too_large(count: int, most: int) -> str:
    return (
        f"That asks for {count} images in one set; a set makes at most {most}: use fewer `{{...}}` "
        "choices or a smaller `--repeat`."
    )


def set_needs_confirming(count: int, cost: str) -> str:
    """Asked before a set of more than a few jobs is admitted (`cost`: e.g. ` for about $0.40`, or empty)."""
    return f"This makes {count} images{cost}. Nothing is made until you confirm."


def set_needs_yes(count: int, cost: str) -> str:
    """The console's way to confirm: the same command again with --yes."""
    return f"This makes {count} images{cost}. Nothing was made: add --yes to the command to make them."


def set_cost(usd: float) -> str:
    return f" for about ${usd:.2f}" if usd > 0 else ""


def set_accepted(count: int) -> str:
    return f"Making a set of {count} images; each is posted as it is done."


def final_accepted(of: str, seed: int | None) -> str:
    return f"Rendering the draft {of} on the full model with the same seed ({seed})."


def no_draft_model(provider: str, mode: str, models: str, others: list[str]) -> str:
    """A provider with one model for `mode` asked for a draft (its Dev model)."""
    verb = "has" if len(others) == 1 else "have"
    elsewhere = f"; {_names(others, 'and')} {verb} a Dev model for it" if others else ""
    return (
        f"{provider} has one model for {mode} ({models}): no `dev` model, so no draft. "
        f"Leave out `--draft` (or `--model dev`){elsewhere}."
    )


def knob_refused(typed: str, what: str, provider: str, others: list[str]) -> str:
    """A flag the chosen provider does not document (`typed`: as the person wrote it); `others`: the
    providers that document it."""
    if others:
        return (
            f"`{typed}` is not offered by {provider}, which takes no {what}: leave it out, or use "
            f"{_names(others, 'or')} (`--provider NAME`)."
        )
    return (
        f"`{typed}` is not offered by {provider}, which takes no {what}, nor by any other provider the "
        "bot knows: leave it out."
    )


def knob_out_of_range(flag: str, value: str, provider: str, allowed: str) -> str:
    return f"`{flag} {value}` is out of range for {provider}: use {allowed}."


def format_refused(fmt: str, provider: str, allowed: str) -> str:
    return f"`--format {fmt}` is not offered by {provider}: use {allowed}."


def _names(names: list[str], last: str = "and") -> str:
    if len(names) <= 1:
        return "".join(names)
    return f"{', '.join(names[:-1])} {last} {names[-1]}"


# --- region edits (bot/usecases/region.py, the editor page at /edit/...) ------------------------------

EDITED_REGION = "edited a region of"
REGION_NOT_YOURS = "Only the person who asked for this image can edit a region of it."
REGION_NOT_HERE = "Region edits are not offered where this image was made."
REGION_LINK_INVALID = (
    "This link to the region editor is not valid. Use the Edit region button under the image "
    "(or /region on the console) for a new one."
)
REGION_LINK_EXPIRED = (
    "This link to the region editor has expired. Use the Edit region button under the image "
    "(or /region on the console) for a new one."
)
REGION_GONE = "This image is not here any more, or the link is not yours."
REGION_NO_AREA = "Drag a rectangle over the part of the picture to change first."
REGION_NO_TEXT = "Write what to change in the rectangle."
REGION_TOO_NARROW = (
    "That rectangle is too long and thin for the model (at most 4 times as long as it is wide): "
    "draw a wider one."
)
REGION_SOURCE_GONE = (
    "The image this region belongs to was deleted, so the edit could not be put back into it."
)
REGION_BLEND_FAILED = "The edited region could not be put back into the image."
# The editor page.
REGION_TITLE = "Edit a region"
REGION_HOW = (
    "Drag a rectangle over the part of the picture to change (with a finger or the mouse), then write "
    "what to change there. Everything outside the rectangle stays exactly as it is."
)
REGION_FIELD = "What to change in the rectangle"
REGION_PLACEHOLDER = "e.g. make the door red"
REGION_SUBMIT = "Edit this region"
REGION_CHOSEN = "Rectangle:"
REGION_ACCEPTED = (
    "Accepted. The edited image will appear in the chat, in the image's thread, as its next version. "
    "You can close this page."
)
REGION_PAGE_PROBLEM = "Something is not right"


def region_link(url: str, minutes: int) -> str:
    """The requester's private answer to Edit region: the editor's link and how long it works."""
    return (
        f"Open this link to draw a rectangle on the image and say what to change there "
        f"(it is yours alone and works for {minutes} minutes): {url}"
    )


def region_outside(width: int, height: int) -> str:
    return f"The rectangle must lie inside the picture ({width}x{height} pixels)."


def region_too_small(least: int) -> str:
    return f"The rectangle is too small: draw one at least {least} pixels wide and tall."


def region_text_too_long(most: int) -> str:
    return f"Say what to change in at most {most} characters."


# --- quota refusals (bot/jobs/quota_policy.py) and where a limit comes from ---------------------------

LIMIT_OPERATOR_USER = "your own limit, set by an operator"
LIMIT_OPERATOR_USER_EVERYWHERE = "your own limit, set by an operator for every server"
LIMIT_ADMIN_USER = "your own limit, set by an admin here"
LIMIT_OPERATOR_MEMBERS = "this server's or workspace's limit, set by an operator"
LIMIT_ADMIN_MEMBERS = "this server's or workspace's limit, set by an admin"
LIMIT_DEFAULT = "the bot's default"
BLOCKED_BY_OPERATOR = (
    "An operator of this bot has stopped you making images here. Nothing was charged; ask the "
    "server's or workspace's admins if you think this is a mistake."
)


def limit_capped(source: str, most: int) -> str:
    return f"{source} (at most {most}, the highest admins may set)"


def budget_spent(spent: float, budget: float, cost: float, month: str) -> str:
    return (
        f"This server or workspace has used ${spent:.2f} of its ${budget:.2f} monthly budget, and this "
        f"request would cost ${cost:.2f}. The budget resets on {month}."
    )


def ceiling_reached(used: int, ceiling: int, when: str) -> str:
    return (
        f"This server or workspace has made {used} of the {ceiling} images it may make today. "
        f"The limit resets at {when}."
    )


def person_quota_reached(used: int, most: int | None, when: str) -> str:
    return (
        f"You have made {used} of the {most} images one person may make in a day across every server "
        f"and workspace. The limit resets at {when}."
    )


def all_used(limit: int, when: str) -> str:
    return f"You have used all {limit} of your images for today. The limit resets at {when}."


def past_admin_max(made: int, most: int, when: str) -> str:
    return (
        f"You have made {made} images here today, resets included, and admins may allow at most {most} "
        f"a day. The limit resets at {when}."
    )


def grant_past_admin_max(total: int, most: int) -> str:
    return (
        f"That would give {total} images today; admins here may give a member at most {most} a day "
        "(with grants). An operator of the bot may allow more."
    )


def too_few_left(asked: int, left: int, limit: int, when: str, *, jobs: int = 1) -> str:
    """A quota refusal of a request that asks for more images than are left today; `jobs`: how many
    jobs it makes (a set of several is made smaller by its choices or its repeats, not by `--n`)."""
    fewer = "fewer `{...}` choices or a smaller `--repeat`" if jobs > 1 else "fewer with `--n`"
    return (
        f"That asks for {asked} images but you have {left} of {limit} left today. "
        f"Ask for {fewer}, or wait until the limit resets at {when}."
    )


UPSCALE_IS_FULL = "`--upscale` renders on the full model: leave out `--model dev`."

# --- Remix (bot/usecases/remix.py) ------------------------------------------------------------------

ACTION_REMIX = "Remix"
REMIX_FORM = "Remix"
REMIX_FIELD = "Prompt and flags"
REMIX_KEEP = "Keep the image"
REMIX_KEEP_HINT = "Start from this image; untick for a new image from the text alone"
REMIX_IMAGE = "The image"
REMIX_SUBMIT = "Remix"
REMIXED = "remixed"
# The console's word for "do not keep the image" (the forms' tick box elsewhere).
REMIX_FRESH = "--fresh"
REMIX_USAGE = (
    "Usage: /remix <job id | last> <new prompt and flags> (the image is kept as the reference; "
    "add --fresh for a new image from the text alone)"
)


def remix_line(of: str, text: str) -> str:
    """The console's `/remix <job>` with nothing after it: the request to edit and type again."""
    return f"Remix {of} by typing its request again, changed: /remix {of} {text}"


def accepted_remix(of: str, kept: bool, seed: int | None) -> str:
    start = "from its image" if kept else "from the text alone"
    return f"accepted: a remix of {of} {start}, seed {seed}"


# --- approvals: reviewed channels (bot/usecases/approvals.py) ---------------------------------------

REVIEW_NO_CHANNEL = "Type `policy review ...` in the channel whose requests are to be reviewed."
REVIEW_USAGE = (
    "Name who reviews, then where their queue is: `policy review @role to #queue` (a role or a user "
    "group), or `policy review @ann @bob` (their direct messages, or `to #queue`); `policy review off` "
    "ends it."
)
REVIEW_NEEDS_QUEUE = "A role or a user group reviews in a channel: add `to #queue`."
REVIEW_QUEUE_NOT_HERE = (
    "The review queue must be a channel of this server or workspace that I can see: name one of "
    "its channels, e.g. `to #review-queue`."
)
REVIEWERS_NOT_HERE = (
    "Reviewers must be a role or user group of this server or workspace, or people in it: someone "
    "you named is not here."
)
REVIEW_OFF = "Requests in this channel are no longer reviewed: results are posted here again."
REVIEW_ASKED = "Waiting for review: approve it to post it in its channel, or reject it with a reason."
AWAITING_REVIEW = "This channel is reviewed: only you see this until a reviewer approves it."
SENT_FOR_REVIEW = (
    "Made, and sent to this channel's reviewers: it is posted here once one of them approves it "
    "(you have it in our direct messages)."
)
REVIEW_NOTICE = (
    "This channel is reviewed: I am making this in our direct messages, and its reviewers see it too."
)
REVIEWERS_UNREACHABLE = (
    "Your image is made, but this channel's reviewers could not be reached, so it cannot be approved "
    "for now: please tell an admin of this server or workspace."
)
REVIEW_TAKEN_DOWN = "That image was taken down by the operators: there is nothing left to approve or reject."
REVIEW_IMAGE_GONE = (
    "That image is no longer held, so it cannot be posted: ask the requester to make it again."
)
NOT_A_REVIEWER = "Only this channel's reviewers can approve or reject its requests."
OWN_REQUEST_NOT_APPROVED = (
    "That is your own request: another reviewer has to approve it (you can still reject it)."
)
REVIEW_REASON_FORM = "Reject this image"
REVIEW_REASON_FIELD = "Why (the requester is told)"
REVIEW_REASON_PLACEHOLDER = "e.g. off-brand colours; try a warmer palette"
ACTION_APPROVE = "Approve"
ACTION_REJECT = "Reject"


def review_set(reviewers: str, queue: str) -> str:
    where = "their direct messages" if queue == "dm" else f"<#{queue}>"
    return (
        f"Requests in this channel are now reviewed by {reviewers}, in {where}: each result goes to its "
        "requester alone until one of them approves it."
    )


def review_shown(reviewers: str | None, queue: str) -> str:
    if reviewers is None:
        return "Requests in this channel are not reviewed."
    return review_set(reviewers, queue)


def approved_by(reviewer: str) -> str:
    return f"✅ approved by {reviewer}"


def rejected_by(reviewer: str, reason: str) -> str:
    return f"❌ rejected by {reviewer}: {reason or 'no reason given'}"


def already_decided(state: str, by: str) -> str:
    return f"That request was already {state} by {by}."


def approval_done(state: str) -> str:
    return (
        f"Done: {state}. The requester has been told."
        if state == "rejected"
        else "Done: posted in its channel."
    )


def rejected_told(prompt: str, reviewer: str, reason: str) -> str:
    return f"Your image “{prompt[:120]}” was not approved by {reviewer}: {reason or 'no reason given'}."
