#include "textflag.h"

// AVX2 forms of the batch-norm row loops (batchnorm_amd64.go). Each does the arithmetic of its portable
// form (batchnorm.go) in the same order: the float64 sums keep one lane of Y0/Y1 per partial sum, and no
// multiply is fused with an add, so the results are the same bits.

// func sumLanesAVX2(acc *[4]float64, x *float32, n int)
TEXT ·sumLanesAVX2(SB), NOSPLIT, $0-24
	MOVQ    acc+0(FP), AX
	MOVQ    x+8(FP), SI
	MOVQ    n+16(FP), CX
	VMOVUPD (AX), Y0
	SHRQ    $2, CX
	JZ      sumdone

sumloop:
	VCVTPS2PD (SI), Y1
	VADDPD    Y1, Y0, Y0
	ADDQ      $16, SI
	DECQ      CX
	JNZ       sumloop

sumdone:
	VMOVUPD Y0, (AX)
	VZEROUPPER
	RET

// func sqDevLanesAVX2(acc *[4]float64, x *float32, n int, mean float64)
TEXT ·sqDevLanesAVX2(SB), NOSPLIT, $0-32
	MOVQ         acc+0(FP), AX
	MOVQ         x+8(FP), SI
	MOVQ         n+16(FP), CX
	VBROADCASTSD mean+24(FP), Y7
	VMOVUPD      (AX), Y0
	SHRQ         $2, CX
	JZ           sqdone

sqloop:
	VCVTPS2PD (SI), Y1
	VSUBPD    Y7, Y1, Y1
	VMULPD    Y1, Y1, Y1
	VADDPD    Y1, Y0, Y0
	ADDQ      $16, SI
	DECQ      CX
	JNZ       sqloop

sqdone:
	VMOVUPD Y0, (AX)
	VZEROUPPER
	RET

// func gradLanesAVX2(sdy, sdyx *[4]float64, x, dy, y *float32, n int, mean float64, relu bool)
TEXT ·gradLanesAVX2(SB), NOSPLIT, $0-57
	MOVQ         sdy+0(FP), AX
	MOVQ         sdyx+8(FP), BX
	MOVQ         x+16(FP), SI
	MOVQ         dy+24(FP), DX
	MOVQ         y+32(FP), DI
	MOVQ         n+40(FP), CX
	VBROADCASTSD mean+48(FP), Y7
	MOVBLZX      relu+56(FP), R8
	VMOVUPD      (AX), Y0
	VMOVUPD      (BX), Y1
	VPXOR        X6, X6, X6
	SHRQ         $2, CX
	JZ           gdone

gloop:
	VMOVUPS (DX), X2
	TESTQ   R8, R8
	JZ      gmasked
	VMOVUPS (DI), X4
	VPCMPGTD X6, X4, X4 // y > 0 as int32: a positive float, not -0 or negative
	VPAND   X4, X2, X2

gmasked:
	VCVTPS2PD X2, Y2
	VCVTPS2PD (SI), Y3
	VSUBPD    Y7, Y3, Y3
	VMULPD    Y3, Y2, Y3
	VADDPD    Y2, Y0, Y0
	VADDPD    Y3, Y1, Y1
	ADDQ      $16, SI
	ADDQ      $16, DX
	ADDQ      $16, DI
	DECQ      CX
	JNZ       gloop

gdone:
	VMOVUPD Y0, (AX)
	VMOVUPD Y1, (BX)
	VZEROUPPER
	RET

// func normalizeRowAVX2(y, x, z *float32, n int, mean, scale, shift float32, add, relu bool)
TEXT ·normalizeRowAVX2(SB), NOSPLIT, $0-46
	MOVQ         y+0(FP), DI
	MOVQ         x+8(FP), SI
	MOVQ         z+16(FP), DX
	MOVQ         n+24(FP), CX
	VBROADCASTSS mean+32(FP), Y5
	VBROADCASTSS scale+36(FP), Y6
	VBROADCASTSS shift+40(FP), Y7
	MOVBLZX      add+44(FP), R8
	MOVBLZX      relu+45(FP), R9
	VPXOR        Y8, Y8, Y8
	SHRQ         $3, CX
	JZ           ndone

nloop:
	VMOVUPS (SI), Y0
	VSUBPS  Y5, Y0, Y0
	VMULPS  Y6, Y0, Y0
	VADDPS  Y7, Y0, Y0
	TESTQ   R8, R8
	JZ      nrelu
	VADDPS  (DX), Y0, Y0
	ADDQ    $32, DX

nrelu:
	TESTQ    R9, R9
	JZ       nstore
	VPCMPGTD Y8, Y0, Y1
	VPAND    Y1, Y0, Y0

nstore:
	VMOVUPS Y0, (DI)
	ADDQ    $32, SI
	ADDQ    $32, DI
	DECQ    CX
	JNZ     nloop

ndone:
	VZEROUPPER
	RET

// func gradRowAVX2(dx, x, dy, y, dz *float32, n int, mean, k, a, b float32, relu, store bool)
TEXT ·gradRowAVX2(SB), NOSPLIT, $0-66
	MOVQ         dx+0(FP), DI
	MOVQ         x+8(FP), SI
	MOVQ         dy+16(FP), DX
	MOVQ         y+24(FP), BX
	MOVQ         dz+32(FP), R10
	MOVQ         n+40(FP), CX
	VBROADCASTSS mean+48(FP), Y4
	VBROADCASTSS k+52(FP), Y5
	VBROADCASTSS a+56(FP), Y6
	VBROADCASTSS b+60(FP), Y7
	MOVBLZX      relu+64(FP), R8
	MOVBLZX      store+65(FP), R9
	VPXOR        Y8, Y8, Y8
	SHRQ         $3, CX
	JZ           rdone

rloop:
	VMOVUPS (DX), Y0
	TESTQ   R8, R8
	JZ      rstore
	VMOVUPS  (BX), Y1
	VPCMPGTD Y8, Y1, Y1
	VPAND    Y1, Y0, Y0
	ADDQ     $32, BX

rstore:
	TESTQ   R9, R9
	JZ      rcompute
	VMOVUPS Y0, (R10)
	ADDQ    $32, R10

rcompute:
	VSUBPS  Y6, Y0, Y0 // gy - a
	VMOVUPS (SI), Y2
	VSUBPS  Y4, Y2, Y2 // x - mean
	VMULPS  Y7, Y2, Y2 // (x - mean)*b
	VSUBPS  Y2, Y0, Y0
	VMULPS  Y5, Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ    $32, SI
	ADDQ    $32, DX
	ADDQ    $32, DI
	DECQ    CX
	JNZ     rloop

rdone:
	VZEROUPPER
	RET
