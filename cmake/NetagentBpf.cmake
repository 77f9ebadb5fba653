# Kernel-side BPF objects: clang -target bpf -> object -> `bpftool gen
# skeleton` -> <name>.skel.h that C++ includes. vmlinux.h is generated once
# per build directory from the build machine's kernel BTF (every Debian 12
# kernel ships /sys/kernel/btf/vmlinux); CO-RE relocates the few kernel types
# used against the running kernel at load time. -mcpu=v3 (32-bit ALU and jumps,
# kernel 5.1+) drops the zero-extension shifts of every 32-bit value: ~8% fewer
# JIT instructions in the XDP program.
find_program(NETAGENT_BPF_CLANG NAMES clang clang-14 REQUIRED)
find_program(NETAGENT_BPFTOOL NAMES bpftool PATHS /usr/sbin /sbin REQUIRED)
find_program(NETAGENT_LLVM_STRIP NAMES llvm-strip llvm-strip-14 REQUIRED)
set(NETAGENT_VMLINUX_BTF /sys/kernel/btf/vmlinux CACHE FILEPATH
    "BTF of a kernel to generate vmlinux.h from")
if(NOT EXISTS ${NETAGENT_VMLINUX_BTF})
  message(FATAL_ERROR "no kernel BTF at ${NETAGENT_VMLINUX_BTF}: set NETAGENT_VMLINUX_BTF "
                      "to a vmlinux with BTF (needed to generate vmlinux.h)")
endif()

set(NETAGENT_BPF_GEN ${CMAKE_BINARY_DIR}/bpf_gen)
file(MAKE_DIRECTORY ${NETAGENT_BPF_GEN})
add_custom_command(
  OUTPUT ${NETAGENT_BPF_GEN}/vmlinux.h
  COMMAND ${NETAGENT_BPFTOOL} btf dump file ${NETAGENT_VMLINUX_BTF} format c
          > ${NETAGENT_BPF_GEN}/vmlinux.h.tmp
  COMMAND ${CMAKE_COMMAND} -E rename ${NETAGENT_BPF_GEN}/vmlinux.h.tmp
          ${NETAGENT_BPF_GEN}/vmlinux.h
  COMMENT "vmlinux.h from ${NETAGENT_VMLINUX_BTF}"
  VERBATIM)
add_custom_target(netagent_vmlinux_h DEPENDS ${NETAGENT_BPF_GEN}/vmlinux.h)

string(TOLOWER "${CMAKE_SYSTEM_PROCESSOR}" _bpf_arch)
if(_bpf_arch MATCHES "x86_64|amd64")
  set(_bpf_arch x86)
elseif(_bpf_arch MATCHES "aarch64|arm64")
  set(_bpf_arch arm64)
endif()

# netagent_bpf_skeleton(<target> SOURCE x.bpf.c NAME <skeleton name> [DEPENDS headers...])
# makes ${NETAGENT_BPF_GEN}/<name>.skel.h and an INTERFACE library <target>
# that puts it (and datapath/include) on the include path and links libbpf.
function(netagent_bpf_skeleton target)
  cmake_parse_arguments(B "" "SOURCE;NAME" "DEPENDS" ${ARGN})
  get_filename_component(src ${B_SOURCE} ABSOLUTE)
  set(obj ${NETAGENT_BPF_GEN}/${B_NAME}.bpf.o)
  set(skel ${NETAGENT_BPF_GEN}/${B_NAME}.skel.h)
  add_custom_command(
    OUTPUT ${obj}
    COMMAND ${NETAGENT_BPF_CLANG} -target bpf -mcpu=v3 -g -O2 -D__TARGET_ARCH_${_bpf_arch}
            -Wall -Wno-unused-function -I${NETAGENT_BPF_GEN}
            -I${CMAKE_SOURCE_DIR}/datapath/include -c ${src} -o ${obj}.tmp
    COMMAND ${NETAGENT_LLVM_STRIP} -g ${obj}.tmp
    COMMAND ${CMAKE_COMMAND} -E rename ${obj}.tmp ${obj}
    DEPENDS ${src} ${B_DEPENDS} ${NETAGENT_BPF_GEN}/vmlinux.h
            ${CMAKE_SOURCE_DIR}/datapath/include/netagent_dp.h
    COMMENT "BPF ${B_NAME}.bpf.o"
    VERBATIM)
  add_custom_command(
    OUTPUT ${skel}
    COMMAND ${NETAGENT_BPFTOOL} gen skeleton ${obj} name ${B_NAME} > ${skel}.tmp
    COMMAND ${CMAKE_COMMAND} -E rename ${skel}.tmp ${skel}
    DEPENDS ${obj}
    COMMENT "BPF skeleton ${B_NAME}.skel.h"
    VERBATIM)
  add_custom_target(${target}_gen DEPENDS ${skel})
  add_library(${target} INTERFACE)
  add_dependencies(${target} ${target}_gen)
  target_include_directories(${target} INTERFACE ${NETAGENT_BPF_GEN}
                             ${CMAKE_SOURCE_DIR}/datapath/include)
  target_link_libraries(${target} INTERFACE PkgConfig::LIBBPF)
endfunction()
