#include "textflag.h"

// func packLanes8AVX2(dst *float32, ldd int, src *float32, off *[8]int, rows, cols, srcStride int)
//
// For each of rows rows and each of cols positions (a multiple of 8) in a row, writes the eight values
// src[off[q] + r*srcStride + c], q = 0..7, to dst[(r*cols+c)*ldd + q]: eight source rows are transposed
// eight positions at a time (unpack, shuffle, then swap 128-bit halves) into eight stores of eight lanes.
TEXT ·packLanes8AVX2(SB), NOSPLIT, $0-56
	MOVQ dst+0(FP), DI
	MOVQ ldd+8(FP), DX
	SHLQ $2, DX
	MOVQ src+16(FP), SI
	MOVQ off+24(FP), AX
	MOVQ 8(AX), BX
	MOVQ 16(AX), R8
	MOVQ 24(AX), R9
	MOVQ 32(AX), R10
	MOVQ 40(AX), R11
	MOVQ 48(AX), R12
	MOVQ 56(AX), R13
	MOVQ 0(AX), AX
	SHLQ $2, AX
	SHLQ $2, BX
	SHLQ $2, R8
	SHLQ $2, R9
	SHLQ $2, R10
	SHLQ $2, R11
	SHLQ $2, R12
	SHLQ $2, R13

	// srcStride becomes the bytes from a row's end to the next row's start.
	MOVQ srcStride+48(FP), CX
	SUBQ cols+40(FP), CX
	SHLQ $2, CX
	MOVQ CX, srcStride+48(FP)
	CMPQ rows+32(FP), $0
	JLE  done

rowloop:
	MOVQ cols+40(FP), CX
	SHRQ $3, CX
	JZ   rowend

blockloop:
	VMOVUPS (SI)(AX*1), Y0
	VMOVUPS (SI)(BX*1), Y1
	VMOVUPS (SI)(R8*1), Y2
	VMOVUPS (SI)(R9*1), Y3
	VMOVUPS (SI)(R10*1), Y4
	VMOVUPS (SI)(R11*1), Y5
	VMOVUPS (SI)(R12*1), Y6
	VMOVUPS (SI)(R13*1), Y7

	VUNPCKLPS Y1, Y0, Y8
	VUNPCKHPS Y1, Y0, Y9
	VUNPCKLPS Y3, Y2, Y10
	VUNPCKHPS Y3, Y2, Y11
	VUNPCKLPS Y5, Y4, Y12
	VUNPCKHPS Y5, Y4, Y13
	VUNPCKLPS Y7, Y6, Y14
	VUNPCKHPS Y7, Y6, Y15

	VSHUFPS $0x44, Y10, Y8, Y0
	VSHUFPS $0xEE, Y10, Y8, Y1
	VSHUFPS $0x44, Y11, Y9, Y2
	VSHUFPS $0xEE, Y11, Y9, Y3
	VSHUFPS $0x44, Y14, Y12, Y4
	VSHUFPS $0xEE, Y14, Y12, Y5
	VSHUFPS $0x44, Y15, Y13, Y6
	VSHUFPS $0xEE, Y15, Y13, Y7

	VPERM2F128 $0x20, Y4, Y0, Y8
	VPERM2F128 $0x20, Y5, Y1, Y9
	VPERM2F128 $0x20, Y6, Y2, Y10
	VPERM2F128 $0x20, Y7, Y3, Y11
	VPERM2F128 $0x31, Y4, Y0, Y12
	VPERM2F128 $0x31, Y5, Y1, Y13
	VPERM2F128 $0x31, Y6, Y2, Y14
	VPERM2F128 $0x31, Y7, Y3, Y15

	VMOVUPS Y8, (DI)
	ADDQ    DX, DI
	VMOVUPS Y9, (DI)
	ADDQ    DX, DI
	VMOVUPS Y10, (DI)
	ADDQ    DX, DI
	VMOVUPS Y11, (DI)
	ADDQ    DX, DI
	VMOVUPS Y12, (DI)
	ADDQ    DX, DI
	VMOVUPS Y13, (DI)
	ADDQ    DX, DI
	VMOVUPS Y14, (DI)
	ADDQ    DX, DI
	VMOVUPS Y15, (DI)
	ADDQ    DX, DI

	ADDQ $32, SI
	DECQ CX
	JNZ  blockloop

rowend:
	ADDQ srcStride+48(FP), SI
	DECQ rows+32(FP)
	JNZ  rowloop

done:
	VZEROUPPER
	RET
