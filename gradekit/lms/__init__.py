"""The course's round trip through its LMS: submissions in, grades and feedback out.

* `identity`: students are the LMS's user ids (names are for people); rosters.
* `layouts`: what a file of a Canvas, Moodle, Blackboard, Gradescope or folder download says.
* `gradebook`: due dates, extensions, late penalties and zeros for ungradable work, in nbgrader's gradebook.
* `export`: Canvas and Moodle grade imports, a plain CSV, feedback zips for bulk upload.

`gradekit collect` reads downloads; `python -m gradekit.lms grades|feedback|dates` writes the rest.
"""
