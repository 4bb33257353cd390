"""What leaves the kit: feedback pages, the class report, LMS grade files and feedback zips.
Trusted side: every student text is escaped (Jinja2 autoescape) or made spreadsheet-safe."""
