"""collect reads downloads named exactly as the LMSs' own code names them (the code is cited per helper).

Each fixture file name is built by a re-implementation of the LMS function that writes it, not typed
from an example; each test says which layout, and which version of the LMS, writes it.
"""

from __future__ import annotations

import csv
import re
import zipfile
from pathlib import Path

import pytest
from test_lms_layouts import LAB, NOTEBOOK, lms_course, notebook_bytes, placed, report

from gradekit.course.exits import UsageError
from gradekit.course.roster import load_lab_worksheet, team_members
from gradekit.intake import collect
from gradekit.intake.layouts import Context, identify


@pytest.fixture
def course(tmp_path: Path):
    return lms_course(tmp_path)


# ---------------------------------------------------------------- Moodle, mod/assign


def moodle_clean_filename(name: str) -> str:
    """lib/moodlelib.php `clean_filename` (PARAM_FILE): control and path characters removed."""
    return re.sub(r'[\x00-\x1f/\\:*?"<>|]', "", name)


def moodle_prefix(fullname: str, participant: int) -> str:
    """mod/assign/classes/downloader.php `get_student_prefix` (individual submissions)."""
    return moodle_clean_filename(fullname.replace("_", " ") + "_" + str(participant))


def moodle_team_prefix(group_name: str, group_id: int) -> str:
    """downloader.php `get_student_prefix` for a team submission: `<group name>_<group id>`, once per group."""
    return moodle_clean_filename(group_name.replace("_", " ") + "_" + str(group_id))


def moodle_path(prefix: str, filename: str, layout: str) -> str:
    """downloader.php `load_submissionplugin_filelist` (4.1+) and locallib.php `download_submissions` (earlier):
    `folders` (default, 4.1+: `<prefix>_assignsubmission_file` + the file's path `/` + its name),
    `folders-3.x` (`<prefix>_assignsubmission_file_/<file>`), `flat` (assign_downloadasfolders = 0)."""
    if layout == "folders":
        return moodle_clean_filename(prefix + "_assignsubmission_file") + "/" + filename
    if layout == "folders-3.x":
        return moodle_clean_filename(prefix + "_assignsubmission_file_") + "/" + filename
    return moodle_clean_filename(prefix + "_assignsubmission_file_" + filename)


def moodle_worksheet(path: Path, rows: list[tuple[int, str, str, str]], team: bool = False) -> Path:
    """mod/assign/gradingtable.php in download mode: Identifier (`recordid`: 'Participant <n>'), Full name,
    Email address, Status, Group (team assignments: 'submissionteam'), Grade, Maximum Grade, ..."""
    header = ["Identifier", "Full name", "Email address", "Status", *(["Group"] if team else []), "Grade",
              "Maximum Grade", "Grade can be changed", "Last modified (submission)", "Last modified (grade)",
              "Feedback comments"]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for participant, name, email, group in rows:
            writer.writerow([f"Participant {participant}", name, email, "Submitted for grading",
                             *([group] if team else []), "", "10.00", "Yes", "Friday, 1 March 2024, 12:00 PM",
                             "", ""])
    return path


# ---------------------------------------------------------------- Canvas, lib/content_zipper.rb


def canvas_name(sortable_name: str | None, user_id: int, attachment_id: int, display_name: str,
                late: bool = False, anonymous_id: str | None = None) -> str:
    """ContentZipper#get_filename (`sanitize_user_name`, `sanitize_file_name`) and `add_upload_submission`."""
    users_name = None
    if anonymous_id is None and sortable_name is not None:
        users_name = re.sub(r"_(\d+)_", r"\1", sortable_name)  # sanitize_user_name
        users_name = re.sub(r"^(\d+)$", r"\1", users_name).lower()
    identifier = f"anon_{anonymous_id}" if anonymous_id is not None else str(user_id)
    filename = "_".join(part for part in (users_name, "LATE" if late else None, identifier) if part is not None)
    filename = re.sub(r"[^\w]", "", filename)  # sanitize_file_name: [^[[:word:]]] removed ('_' is a word char)
    attachment = re.sub(r'[\x00/\\:*?"<>|]+', "_", display_name)  # sanitize_attachment_filename
    return f"{filename}_{attachment_id}_{attachment}"


def make_zip(path: Path, entries: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return path


# ---------------------------------------------------------------- Moodle


def test_moodle_4_1_default_folders_earlier_folders_and_flat_names_all_place_the_participant(course, tmp_path):
    entries = {
        moodle_path(moodle_prefix("Zoë Müller", 100), f"{NOTEBOOK}.ipynb", "folders"): notebook_bytes("zoë"),
        moodle_path(moodle_prefix("Jane_Smith", 101), f"{NOTEBOOK}.ipynb", "folders"): notebook_bytes("jane"),
        moodle_path(moodle_prefix("Bob Stone", 102), f"{NOTEBOOK}.ipynb", "folders-3.x"): notebook_bytes("bob"),
        moodle_path(moodle_prefix("王芳", 103), f"{NOTEBOOK}.ipynb", "flat"): notebook_bytes("王芳"),
        moodle_path(moodle_prefix("Ann: Lee", 104), f"Copy of {NOTEBOOK}.ipynb", "folders"): notebook_bytes("ann"),
    }
    assert "Jane Smith_101_assignsubmission_file/" in "".join(entries)  # 4.1+: no trailing '_', '_' in names gone
    collect.collect(course, LAB, make_zip(tmp_path / "moodle.zip", entries))
    assert placed(course) == {"100": "zoë", "101": "jane", "102": "bob", "103": "王芳", "104": "ann"}


def test_a_moodle_team_copy_goes_to_every_member_never_to_the_participant_numbered_like_the_group(course, tmp_path):
    worksheet = moodle_worksheet(tmp_path / "worksheet.csv", [
        (101, "Ada Byron", "ada@example.edu", "Team_A"), (102, "Alan Turing", "alan@example.edu", "Team_A"),
        (17, "Grace Hopper", "grace@example.edu", "Team B"), (18, "Edsger Dijkstra", "ed@example.edu", "")],
        team=True)
    entries = {  # group ids 17 and 40: 17 is also a participant's number
        moodle_path(moodle_team_prefix("Team_A", 17), f"{NOTEBOOK}.ipynb", "folders"): notebook_bytes("team A"),
        moodle_path(moodle_team_prefix("Team B", 40), f"{NOTEBOOK}.ipynb", "folders"): notebook_bytes("team B"),
        moodle_path(moodle_team_prefix("Lost team", 41), f"{NOTEBOOK}.ipynb", "folders"): notebook_bytes("lost"),
    }
    collect.collect(course, LAB, make_zip(tmp_path / "teams.zip", entries), roster=worksheet)
    # Students by e-mail (the worksheet's), never participant 17 for team B's group id 17.
    assert placed(course) == {"ada@example.edu": "team A", "alan@example.edu": "team A",
                              "grace@example.edu": "team B"}
    rows = report(course)
    lost = next(row for key, row in rows.items() if key.startswith("Lost team_41"))
    assert lost["action"] == "not placed" and "Group column" in lost["notes"]
    assert set(team_members(load_lab_worksheet(course.root, LAB))) == {"Team_A", "Team B"}


def test_without_a_team_worksheet_a_moodle_prefix_names_one_participant(tmp_path):
    path = moodle_path(moodle_prefix("Jane Smith", 101), f"{NOTEBOOK}.ipynb", "folders")
    placement = identify(path, Context(LAB, [LAB]))
    assert placement.layout == "moodle" and [i.user for i in placement.identities] == ["101"]
    team = identify(path, Context(LAB, [LAB], teams={}))
    assert team.identities == [] and team.problem


# ---------------------------------------------------------------- Canvas


def test_canvas_names_with_underscores_late_and_anonymous_ids(course, tmp_path):
    entries = {
        canvas_name("O_Brien, Ann", 201, 9001, f"{NOTEBOOK}.ipynb"): notebook_bytes("ann"),
        canvas_name("Smith_12_, Jo", 202, 9002, f"{NOTEBOOK}.ipynb", late=True): notebook_bytes("jo late"),
        canvas_name(None, 203, 9003, f"{NOTEBOOK}.ipynb", anonymous_id="x1Y2z"): notebook_bytes("anon letters"),
        canvas_name(None, 204, 9004, f"{NOTEBOOK}.ipynb", anonymous_id="12345", late=True):
            notebook_bytes("anon digits"),
    }
    assert "o_brienann_201_9001_" in "".join(entries) and "LATE_anon_12345_9004_" in "".join(entries)
    collect.collect(course, LAB, make_zip(tmp_path / "canvas.zip", entries))
    assert placed(course) == {"201": "ann", "202": "jo late", "anon_x1Y2z": "anon letters",
                              "anon_12345": "anon digits"}  # never user 12345, who does not exist


def test_a_file_from_a_user_not_on_the_roster_is_said_so(course, tmp_path, capsys):
    roster = tmp_path / "export.csv"
    roster.write_text("Student,ID,SIS User ID,SIS Login ID,Section,Lab 1 (42)\n"
                      "    Points Possible,,,,,10\n\"O_Brien, Ann\",201,S1,ann,A,\n", encoding="utf-8")
    entries = {canvas_name("O_Brien, Ann", 201, 9001, f"{NOTEBOOK}.ipynb"): notebook_bytes("ann"),
               canvas_name("Stranger, Sam", 299, 9002, f"{NOTEBOOK}.ipynb"): notebook_bytes("sam")}
    collect.collect(course, LAB, make_zip(tmp_path / "canvas.zip", entries), roster=roster)
    assert "WARNING: 1 student(s) not on the roster: 299" in capsys.readouterr().out
    ann_file, sam_file = entries
    rows = report(course)
    assert "not on the canvas roster" in rows[f"{sam_file}|299"]["notes"]
    assert "not on the" not in rows[f"{ann_file}|201"]["notes"]


def test_a_canvas_group_copy_goes_to_every_member_of_the_group(course, tmp_path):
    # People > the group set > Export: doc/api/group_category_csv.md's columns, one row per member.
    groups = tmp_path / "groups.csv"
    groups.write_text("name,canvas_user_id,user_id,login_id,sections,group_name,canvas_group_id,group_id\n"
                      '"Byron, Ada",301,S301,ada,A,Group 1,77,\n"Turing, Alan",302,S302,alan,A,Group 1,77,\n'
                      '"Hopper, Grace",303,S303,grace,B,Group 2,78,\n', encoding="utf-8")
    entries = {  # Assignment#representatives: one file per group, under one member's id
        canvas_name("Turing, Alan", 302, 9101, f"{NOTEBOOK}.ipynb"): notebook_bytes("group 1"),
        canvas_name("Hopper, Grace", 303, 9102, f"{NOTEBOOK}.ipynb"): notebook_bytes("group 2"),
    }
    collect.collect(course, LAB, make_zip(tmp_path / "canvas.zip", entries), groups=groups)
    assert placed(course) == {"301": "group 1", "302": "group 1", "303": "group 2"}


def test_a_moodle_person_is_one_student_in_every_lab_whatever_their_participant_numbers(course, tmp_path):
    import shutil

    for folder in ("source", "release"):  # a second lab, like the first
        shutil.copytree(course.root / folder / LAB, course.root / folder / "lab2")
    # mod/assign `assign_user_mapping`: each assignment numbers its participants itself.
    first = moodle_worksheet(tmp_path / "lab1.csv", [(101, "Jane Smith", "Jane@Example.edu", ""),
                                                     (102, "Bob Stone", "bob@example.edu", "")])
    second = moodle_worksheet(tmp_path / "lab2.csv", [(555, "Jane Smith", "jane@example.edu", ""),
                                                      (101, "Bob Stone", "bob@example.edu", "")])
    collect.collect(course, LAB, make_zip(tmp_path / "m1.zip", {
        moodle_path(moodle_prefix("Jane Smith", 101), f"{NOTEBOOK}.ipynb", "folders"): notebook_bytes("jane 1"),
        moodle_path(moodle_prefix("Bob Stone", 102), f"{NOTEBOOK}.ipynb", "folders"): notebook_bytes("bob 1")}),
        roster=first)
    collect.collect(course, "lab2", make_zip(tmp_path / "m2.zip", {
        moodle_path(moodle_prefix("Jane Smith", 555), f"{NOTEBOOK}.ipynb", "folders"): notebook_bytes("jane 2"),
        moodle_path(moodle_prefix("Bob Stone", 101), f"{NOTEBOOK}.ipynb", "folders"): notebook_bytes("bob 2")}),
        roster=second)
    assert sorted(p.name for p in course.submitted.iterdir()) == ["bob@example.edu", "jane@example.edu"]
    assert sorted(p.parent.name + "/" + p.name for p in course.submitted.glob("*/*")) == [
        "bob@example.edu/lab1", "bob@example.edu/lab2", "jane@example.edu/lab1", "jane@example.edu/lab2"]
    assert placed(course)["jane@example.edu"] == "jane 1"  # participant 101 is Jane in lab1, Bob in lab2


def test_a_worksheet_in_another_language_is_refused_in_one_line_before_anything_is_written(course, tmp_path):
    # gradingtable.php names the columns with get_string() in the downloader's language; the importer
    # (importgradeslib.php `init`) matches them in the importer's: a German worksheet cannot be filled here.
    german = tmp_path / "bewertungen.csv"
    german.write_text("ID,Vollständiger Name,E-Mail-Adresse,Status,Bewertung,Bestwertung,Bewertung kann geändert "
                      "werden,Zuletzt geändert (Abgabe),Zuletzt geändert (Bewertung),Feedback als Kommentar\n"
                      "Teilnehmer/in 101,Ada Byron,ada@example.edu,Keine Abgabe,,10,Ja,-,-,\n", encoding="utf-8")
    download = make_zip(tmp_path / "m.zip", {
        moodle_path(moodle_prefix("Ada Byron", 101), f"{NOTEBOOK}.ipynb", "folders"): notebook_bytes("ada")})
    with pytest.raises(UsageError, match="another language.*English") as refused:
        collect.collect(course, LAB, download, roster=german)
    assert "\n" not in str(refused.value)
    assert not course.submitted.exists() and not (course.root / "reports").exists()
