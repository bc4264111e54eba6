# shellcheck shell=bash
# bench/results_section.bash: sourced by the bench scripts that own a section
# of bench/RESULTS.md (bench/run.sh writes the rest and keeps these).
#
#   bench_write_section NAME TEXT
#
# TEXT starts with "<!-- NAME: ... -->" and ends with "<!-- /NAME -->"; it
# replaces the file's section of that name, or is appended when there is none.
bench_write_section() {
	python3 - "$1" "$2" <<'PY'
import re, sys
name, section = sys.argv[1], sys.argv[2]
path = 'bench/RESULTS.md'
text = open(path, encoding='utf-8').read()
pattern = re.compile(r'<!-- %s:.*?<!-- /%s -->' % (re.escape(name), re.escape(name)), re.S)
if pattern.search(text):
    text = pattern.sub(lambda m: section, text)
else:
    text = text.rstrip('\n') + '\n\n' + section + '\n'
open(path, 'w', encoding='utf-8').write(text)
PY
}
