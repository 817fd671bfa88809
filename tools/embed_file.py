#!/usr/bin/python3
"""Writes a C++ header that holds a file's bytes as a std::string_view.

  embed_file.py INPUT OUTPUT NAME
"""
import sys

src, out, name = sys.argv[1:4]
data = open(src, "rb").read()
body = ",".join(str(b) for b in data)
with open(out, "w") as f:
    f.write(f"// Generated from {src.split('/')[-1]} by tools/embed_file.py: do not edit.\n#pragma once\n")
    f.write("#include <string_view>\n")
    f.write(f"inline constexpr char {name}_bytes[] = {{{body}{',' if data else ''}0}};\n")
    f.write(f"inline constexpr std::string_view {name}({name}_bytes, {len(data)});\n")
