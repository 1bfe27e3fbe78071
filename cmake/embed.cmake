# Turns a text file into a C++ header holding it as a raw string literal.
file(READ ${INPUT} content)
get_filename_component(dir ${OUTPUT} DIRECTORY)
file(MAKE_DIRECTORY ${dir})
file(WRITE ${OUTPUT}.tmp "#pragma once\n// Generated from ${INPUT}; do not edit.\nnamespace mflow::spec {\ninline constexpr const char kEmbeddedFlowSchema[] = R\"mflow_schema(${content})mflow_schema\";\n}  // namespace mflow::spec\n")
file(RENAME ${OUTPUT}.tmp ${OUTPUT})
